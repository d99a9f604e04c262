//! Command-line parsing and `--help` texts.
//!
//! Hand-written on purpose: a handful of subcommands with a few options each
//! does not justify a parser crate in a firmware-sized binary. Every error
//! names the option and says what was expected; exit code 2.

use crate::bench::Sharing;
use crate::config::DEFAULT_CONFIG;
use crate::error::{Error, ErrorKind, Result};
use std::ffi::OsString;
use std::path::PathBuf;

/// `run` and `demo`'s options, as typed; `commands` turns them into the
/// service's options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunArgs {
    /// The configuration file.
    pub config: PathBuf,
    /// The planner.
    pub strategy: crate::planner::Strategy,
    /// Budget in cores, overriding the configuration's.
    pub budget: Option<f64>,
    /// Demo: a live status line on stderr.
    pub status_line: bool,
    /// Re-plan when the config file or a drop-in changes (besides SIGHUP).
    pub watch: bool,
    /// Stop after this long (`None`: until a signal or the sources end).
    pub duration: Option<std::time::Duration>,
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `mainstream check`: validate config and drop-ins.
    Check {
        /// Config file.
        config: PathBuf,
    },
    /// `mainstream cameras`: list video devices.
    Cameras {
        /// Print JSON instead of a table.
        json: bool,
    },
    /// `mainstream cameras --test DEVICE`: stream one camera through preprocessing.
    CameraTest {
        /// What to open and ask for.
        spec: crate::camera::SourceSpec,
        /// Frames to stream.
        frames: u32,
    },
    /// `mainstream plan`: show the scheduler's plan for the configured apps.
    Plan {
        /// Config file.
        config: PathBuf,
        /// Budget in cores, overriding `[device] budget_cores`.
        budget: Option<f64>,
        /// Print JSON.
        json: bool,
    },
    /// `mainstream profile`: measure this device's per-segment costs.
    Profile {
        /// Config file (for the base network and the state directory).
        config: PathBuf,
        /// Timed runs per segment.
        runs: u32,
    },
    /// `mainstream simulate`: reproduce the paper's scheduler results.
    Simulate(SimulateArgs),
    /// `mainstream bench`: stem-sharing throughput on this machine.
    Bench(crate::bench::BenchArgs),
    /// `mainstream replay`: the real pipeline on a labelled clip under a simulated clock.
    Replay(crate::replay::ReplayArgs),
    /// `mainstream calibrate`: measure every head's rates on a labelled clip.
    Calibrate(crate::calibrate::CalibrateArgs),
    /// `mainstream run`: the appliance service.
    Run(RunArgs),
    /// `mainstream demo`: the service on the bundled demo, scored against its ground truth.
    Demo {
        /// How to run the service.
        run: RunArgs,
        /// Print the summary as JSON.
        json: bool,
    },
    /// `mainstream status`: what the running service is doing.
    Status {
        /// Config file (for the state directory).
        config: PathBuf,
        /// Print JSON.
        json: bool,
    },
    /// `mainstream help [COMMAND]` or `--help`.
    Help(Option<String>),
    /// `mainstream --version`.
    Version,
}

/// Options of `mainstream simulate`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulateArgs {
    /// Print JSON.
    pub json: bool,
    /// Random workloads per table cell.
    pub workloads: usize,
    /// PRNG seed.
    pub seed: u64,
}

/// Top-level help.
pub const HELP: &str = "\
mainstream: many video-analysis apps on one edge box, sharing the layers they have in common

Each app is a classifier fine-tuned from one shared base network (MobileNetV2).
The layers the apps share (the stem) run once per frame; each app runs only its
own remainder (its head). The planner picks, per app, how much to share and at
what frame rate, to get the best mean event F1 within the box's compute budget.

USAGE:
    mainstream <COMMAND> [OPTIONS]

COMMANDS:
    run        Run the service: capture, shared stems, per-app heads, events (what systemd starts)
    demo       Run the service on the bundled demo clip and score its events against ground truth
    status     Show what the running service is doing: plan, per-app fps and drops, cameras, events
    check      Validate the configuration and app drop-ins without touching hardware
    plan       Show the plan (branch point and frame rate per app) for the configuration
    simulate   Reproduce the Mainstream paper's scheduler results from its published curves
    profile    Measure what each segment of the base network costs on this machine
    cameras    List the video devices present, with their formats, sizes and rates
    bench      Measure how much stem sharing speeds up N apps on this machine
    replay     Replay a labelled clip through the real pipeline under a compute budget; score event F1
    calibrate  Measure every app head's detection and false-positive rates on a labelled clip
    help       Show help for a command: mainstream help <COMMAND>

OPTIONS:
    -h, --help       Show this help (or a command's, after the command)
    -V, --version    Show the version

ENVIRONMENT:
    MAINSTREAM_LOG         Log filter, e.g. `debug` or `mainstream=trace` (overrides the config)
    MAINSTREAM_LOG_FORMAT  `systemd` for journald priority prefixes (automatic under systemd)

EXIT CODES:
    0 success, 1 failure, 2 bad command line, 78 configuration error

Configuration reference: docs/config.md. Default config: /etc/mainstream/config.toml.
";

const HELP_CHECK: &str = "\
mainstream check: validate the configuration and app drop-ins

Reads the config file and every app drop-in (apps_dir, default apps.d/ beside
the config), loads each app's M-Package metadata and checks it against the base
network. Touches no camera. Prints every problem as FILE:LINE:COL: message, all
of them at once, and exits 78 if there is any; otherwise prints a summary.

USAGE:
    mainstream check [--config FILE]

OPTIONS:
    -c, --config FILE   Configuration file [default: /etc/mainstream/config.toml]

EXAMPLE:
    mainstream check --config demo/config.toml
";

const HELP_RUN: &str = "\
mainstream run: the appliance service

Boots (config and app drop-ins, M-Packages, state, cost profile, plan from the
precomputed planner table, one stem tree per camera), opens the cameras, tells
systemd READY=1, and analyses frames until SIGTERM. Each camera has its own
thread; an app analyses frames at its planned rate, and X-voting turns its
decisions into events.

Events go to stdout as JSON lines (journalctl shows them) and to the
checksummed, append-only event log in the state directory:
    {\"type\":\"event_start\",\"app\":\"birds\",\"camera\":\"gate\",\"start\":\"2026-...Z\",...}
    {\"type\":\"event\",\"app\":\"birds\",\"camera\":\"gate\",\"start\":...,\"end\":...,
     \"start_frame\":120,\"end_frame\":151,\"peak_score\":0.97,\"samples\":9}

Changing apps needs no restart: add, edit or delete a drop-in in apps.d/ and
send SIGHUP (systemctl reload mainstream), or just wait: the files are
watched. The service re-plans in milliseconds and swaps stem trees between
frames without reopening cameras. A broken config is rejected with its
FILE:LINE:COL problems in the log and the running plan stays. Changing
[[camera]] entries or the base network needs a restart.

When analysis falls behind, frames are dropped at the source (never queued)
and counted per app. Every 10 s the measured CPU use is checked against the
plan's predicted cost; when they differ by 20% or more twice in a row, the
cost profile is measured again and the apps re-planned.

USAGE:
    mainstream run [--config FILE] [--strategy NAME] [--budget CORES]
                   [--duration SECONDS] [--no-watch]

OPTIONS:
    -c, --config FILE    Configuration file [default: /etc/mainstream/config.toml]
    --strategy NAME      Planner: mainstream (default: exact when it finishes, else
                         a near-optimal heuristic), greedy, exact, heuristic, max-min,
                         and the baselines max-sharing, no-sharing
    --budget CORES       Compute budget in cores, instead of [device] budget_cores
    --duration SECONDS   Stop after this long (default: until SIGTERM, or until
                         every replay source has ended)
    --no-watch           Re-plan on SIGHUP only, not on file changes

FILES (in [device] state_dir):
    state.bin     plan, counters and event-log position (postcard, checksummed)
    events.log    the event log (framed, checksummed records)
    status.bin    live status, rewritten every second (`mainstream status`)
    profile.bin   the device cost profile;  planner.bin  the planner table

SIGNALS:
    SIGTERM, SIGINT   stop (within a second; open events are closed and logged)
    SIGHUP            reload the configuration and re-plan
";

const HELP_DEMO: &str = "\
mainstream demo: the service on the bundled demo, scored

Runs `mainstream run` on the demo configuration: the demo clip (held-out campus
footage with held-out objects crossing it) replayed in real time as a camera,
and the demo apps (birds, a second birds tenant, vehicles, mammals). Shows a
live status line on stderr and the events on stdout as they happen, then each
app's event recall, precision and F1 against the clip's ground truth
(ground_truth.toml beside the clip), beside the F1 the plan predicted.

USAGE:
    mainstream demo [--config FILE] [--strategy NAME] [--budget CORES] [--json]

OPTIONS:
    -c, --config FILE   Demo configuration [default: demo/config.toml]
    --strategy NAME     Planner, as for `run` (try max-sharing or no-sharing)
    --budget CORES      Compute budget in cores
    --json              The summary as one JSON document

EXAMPLE:
    mainstream demo --budget 0.5 --strategy no-sharing
";

const HELP_STATUS: &str = "\
mainstream status: what the service is doing

Reads the live status the service rewrites every second in its state
directory (it never talks to the service, so it cannot disturb it): the plan
(per app: branch point, planned and achieved fps, dropped samples, events),
the cameras' health, CPU use against the plan, and the last events.

USAGE:
    mainstream status [--config FILE] [--json]

OPTIONS:
    -c, --config FILE   Configuration file [default: /etc/mainstream/config.toml]
    --json              JSON for scripts
";

const HELP_CAMERAS: &str = "\
mainstream cameras: list the video devices present, or test one

Lists every /dev/video* node that can capture, with the stable /dev/v4l/by-id
and by-path links that point to it, its pixel formats, frame sizes and frame
rates. With no camera present it prints an empty list and exits 0.

With --test, opens one camera as the service would (format and size
negotiated with fallback, the frame interval set on the device), streams
frames through decoding and preprocessing, and reports what was negotiated,
the rate the driver delivered (by its timestamps), dropped and damaged
frames, disconnects, and the preprocessing time. Exit 0 if it streamed, 1 if
not. Use it when installing a camera.

USAGE:
    mainstream cameras [--json]
    mainstream cameras --test DEVICE [--format F] [--size WxH] [--fps N] [--frames N]

OPTIONS:
    --json         One JSON document instead of a table
    --test DEVICE  A device node or stable link, e.g. /dev/v4l/by-id/usb-...-video-index0
                   (a replay file works too)
    --format F     mjpeg, yuyv, grey or rgb24 [default: mjpeg]
    --size WxH     Frame size to negotiate [default: 640x480]
    --fps N        Frame rate to set on the device [default: 30]
    --frames N     Frames to stream [default: 100]
";

const HELP_PLAN: &str = "\
mainstream plan: show the schedule for the configured apps

For every enabled app: the branch point (how many base-network segments it
shares), the frame rate, and the predicted event recall, precision and F1;
then the total cost against the budget, the shared-stem tree per camera, and
the same budget under No-Sharing and Max-Sharing for comparison.

An app leaves its own (least-shared) head for a more shared one only when the
budget forces it or the model predicts the shared head better by more than
[device] share_margin (0.05 F1 unless set; 0 is the paper's planner).

A plan that mixes heads runs only if it is predicted better than the
No-Sharing and the Max-Sharing plan by more than the calibration can vouch
for where they differ (the root-sum-square of those heads' margins, per app);
otherwise the planner runs the better of those baselines and says so
('exact runs the no-sharing plan: its own was predicted only ...').

USAGE:
    mainstream plan [--config FILE] [--budget CORES] [--json]

OPTIONS:
    -c, --config FILE   Configuration file [default: /etc/mainstream/config.toml]
    --budget CORES      Compute budget in cores, instead of [device] budget_cores
    --json              JSON for scripts
";

const HELP_SIMULATE: &str = "\
mainstream simulate: reproduce the paper's scheduler results

Draws random workloads from the nine published MobileNet accuracy curves of the
Mainstream paper (USENIX ATC 2018) and its NUC layer-cost profile, and reports
mean event F1 of Mainstream, Max-Sharing and No-Sharing: for 2, 5, 10 and 25
apps at budget 150, and for 3 apps at budgets 50 to 300. First in the paper's
code-compatible units (to compare with its tables), then in physical units and
with the exact optimiser.

USAGE:
    mainstream simulate [--json] [--workloads N] [--seed S]

OPTIONS:
    --json          A JSON list of rows
    --workloads N   Random workloads per point [default: 100]
    --seed S        Seed of the workload generator [default: 3; with 100
                    workloads a cell's sampling error is about 0.02]
";

const HELP_REPLAY: &str = "\
mainstream replay: the real pipeline on a labelled clip, under a compute budget

Plans the configured apps of one camera, then replays a clip through exactly
what a live camera's frames go through (MJPEG decoding, preprocessing, the
shared stem tree, every app's head, per-app sampling at its planned rate,
X-voting) as fast as this machine goes, and scores each app's events against
the clip's ground truth: event recall, precision and F1 beside the F1 the
planner predicted. One run per --strategy, on the same frames.

Time is simulated: frame n arrives at n / fps seconds of video time, and an
analysed frame keeps the box busy for (its measured CPU time) / BUDGET
seconds. A frame more than 1.5 intervals old when the box is free again is
dropped, as the service drops frames of a live camera it cannot keep up
with. So the apps get at most BUDGET core-seconds per second of video,
however fast or loaded this machine is, and too costly a plan loses samples
exactly as it would on the appliance.

USAGE:
    mainstream replay [--config FILE] [--strategy LIST] [--budget LIST]
                      [--apps LIST] [--camera NAME] [--clip FILE] [--truth FILE]
                      [--phase-seed LIST] [--branch K] [--fps F] [--frames N]
                      [--charge network|all] [--tolerance F] [--json]

OPTIONS:
    -c, --config FILE     Apps, base network and camera [default: demo/config.toml]
    --strategy LIST       Planners, comma-separated: mainstream (exact for small
                          problems), exact, greedy, heuristic, max-min,
                          no-sharing, max-sharing [default: mainstream]
    --budget LIST         Compute budgets in cores, comma-separated: one run per
                          budget and strategy [default: [device] budget_cores].
                          A plan identical to one already replayed at the same
                          budget, or at a smaller one without a dropped frame,
                          is not replayed again: its run is reused (replayed =
                          false in --json), as replaying would repeat it
    --apps LIST           Only these apps (names from the config) [default: all of the camera's]
    --camera NAME         The camera whose apps are replayed [default: the first]
    --clip FILE           Replay this file instead of the camera's source
    --truth FILE          Ground truth [default: the clip's name with
                          .ground_truth.toml, or ground_truth.toml beside it]
    --phase-seed LIST     Start each app's sampling at a random phase instead of
                          on the first frame, as the paper measures; one run
                          per seed, e.g. 1,2,3
    --branch K            Every app at branch point K (a head its package has)
                          instead of the planner's choice; predictions follow
    --fps F               Every app at F frames per second instead of the
                          planner's choice (the budget still holds: frames the
                          box cannot analyse in time are dropped)
    --frames N            Only the first N frames (labelled events are cut there)
    --charge WHAT         What the budget pays for: network (stem and heads, what
                          the planner counts) or all (decoding too) [default: network]
    --tolerance F         Frames of slack around a labelled event [default: 2]
    --json                One JSON object per run

EXAMPLES:
    mainstream replay
    mainstream replay --strategy no-sharing,max-sharing,mainstream --budget 0.25,1
    mainstream replay --apps birds,vehicles --phase-seed 7 --json
    mainstream replay --apps vehicles --branch 20 --fps 2.5 --phase-seed 1,2,3,4
";

const HELP_CALIBRATE: &str = "\
mainstream calibrate: measure the planner's inputs on footage like the camera's

The planner predicts each app's event F1 from per-head numbers: how often a
frame inside an event is detected (accuracy) and how often a frame without
one fires (fpr). The M-Trainer measures them on its test images, whose
negatives are mostly empty scenes; on a camera the negatives are the other
objects that pass, and the real false-positive rate can be several times
higher. This command runs every head of every app's package on every frame
of a labelled clip through the real pipeline (decoder, preprocessing, stem
tree) and measures, per head:

    accuracy  positive frames / frames inside labelled events
    fpr       positive frames / frames more than --tolerance frames from
              every labelled event (an event's edges count as neither)

and per package the mean event length, the share of event-length windows
that hold an event, and the miss correlation inside events. For every head
but the least-shared it also measures gain_sd: how much of the head's
predicted F1 gain over the least-shared head could be chance, from 1,000
resamples of the object instances that cross the clip (the ground truth's
[[object]] list; blocks of whole events if it has none). The planner then
shares that head only for a gain above z x gain_sd (z = 1.645 with one
shared head, more with several). With --write,
each package directory gets calibration.toml, which replaces the trained
values as the planner's inputs (delete it to go back; `mainstream check`
says which packages are calibrated; a running service reads it when it next
loads the configuration: `systemctl reload mainstream` (SIGHUP)). Use a clip
the evaluation does not score on: trainer/mtrainer.py --eval-stream NAME
--eval-split val makes one from the trainer's validation footage and objects.

USAGE:
    mainstream calibrate [--config FILE] [--clip FILE] [--truth FILE] [--apps LIST]
                         [--camera NAME] [--frames N] [--tolerance F] [--write] [--json]

OPTIONS:
    -c, --config FILE     Apps, base network and camera [default: demo/config.toml]
    --clip FILE           The labelled clip [default: the camera's replay file]
    --truth FILE          Its ground truth [default: the clip's name with
                          .ground_truth.toml, or ground_truth.toml beside it];
                          it must label events of every calibrated app
    --apps LIST           Only these apps' packages [default: all of the camera's]
    --camera NAME         The camera whose apps are calibrated [default: the first]
    --frames N            Only the first N frames
    --tolerance F         Frames at each edge of an event that are not
                          negatives [default: 2]
    --write               Save each package's calibration.toml (atomically)
    --json                The measurements as one JSON object

EXAMPLES:
    mainstream calibrate --clip target/eval/streams/cal24.mjpeg
    mainstream calibrate --config demo/config.toml --clip cal24.mjpeg --write
";

const HELP_BENCH: &str = "\
mainstream bench: throughput of stem sharing on this machine

Runs N apps on real frames through the stem tree and reports app-frames
analysed per second. Each bench app is the base network's own remainder from
its branch point (real work of the real size): `none` = every app runs the
whole network, `mid` = the first half is shared, `max` = everything but the
classifier is shared. --processes adds the baseline users run today: N
separate processes, each running the whole network.

USAGE:
    mainstream bench [--apps 1,2,4,8] [--sharing none,mid,max] [--frames N]
                     [--runs R] [--threads T] [--cameras C] [--processes] [--json]
                     [--base MANIFEST]
                     [--input FILE.f32 ...]

OPTIONS:
    --apps LIST        App counts [default: 1,2,4,8]
    --sharing LIST     Sharing modes [default: none,mid,max]
    --frames N         Frames per timed run [default: 20]
    --runs R           Timed runs per point; the median is reported [default: 5]
    --threads T        Threads for the apps' heads: the stem runs on the main
                       thread, heads are shared out by cost [default: 1]
    --cameras C        C cameras at once, each with its own tree of N apps on
                       its own thread, as the service runs them; aggregate fps
                       counts every camera's apps [default: 1]
    --processes        Also measure N separate full-network processes
    --json             One JSON object per point
    --base MANIFEST    Base network [default: models/mobilenet_v2/manifest.toml]
    --input FILE       A preprocessed frame (raw f32 [1,3,224,224]); repeat for
                       more [default: the real photos in tests/fixtures/imagenet]
";

const HELP_PROFILE: &str = "\
mainstream profile: measure the base network's cost on this machine

Times every segment of the base network (between adjacent branch points) with
tract: 2 warm-up runs, then --runs timed runs, median. Times are CPU time of
the measuring thread (what a budget of cores buys), so other load on the
machine does not inflate them. Saves the profile with
postcard in the state directory, keyed by the base's SHA-256 and the CPU
model; `plan` and the service use it and measure it themselves if missing.

USAGE:
    mainstream profile [--config FILE] [--runs R]

OPTIONS:
    -c, --config FILE   Configuration file [default: /etc/mainstream/config.toml]
    --runs R            Timed runs per segment [default: 7]
";

/// Every command with its help text, in the order `mainstream --help` lists
/// them: the one table the parser, `help COMMAND` and the help test read.
pub const COMMANDS: &[(&str, &str)] = &[
    ("run", HELP_RUN),
    ("demo", HELP_DEMO),
    ("status", HELP_STATUS),
    ("check", HELP_CHECK),
    ("plan", HELP_PLAN),
    ("simulate", HELP_SIMULATE),
    ("profile", HELP_PROFILE),
    ("cameras", HELP_CAMERAS),
    ("bench", HELP_BENCH),
    ("replay", HELP_REPLAY),
    ("calibrate", HELP_CALIBRATE),
    ("help", HELP),
];

/// Help text for a command, or `None` if there is no such command.
pub fn help_for(cmd: Option<&str>) -> Option<&'static str> {
    match cmd {
        None => Some(HELP),
        Some(name) => COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h),
    }
}

/// Parses a comma-separated list, naming the option and the bad item on error.
fn parse_list<T>(
    opt: &str,
    v: &str,
    item: impl Fn(&str) -> Option<T>,
    what: &str,
) -> Result<Vec<T>> {
    v.split(',')
        .map(|x| {
            item(x.trim())
                .ok_or_else(|| usage(format!("{opt}: {x:?} is not valid: expected {what}")))
        })
        .collect()
}

fn usage(msg: String) -> Error {
    Error::new(ErrorKind::Usage, msg)
}

/// The arguments after the command name, consumed option by option.
struct Args {
    cmd: &'static str,
    rest: std::vec::IntoIter<String>,
    help: bool,
}

impl Args {
    /// Next `(option, inline value)`, splitting `--opt=value`; `None` at the end.
    fn next_opt(&mut self) -> Result<Option<(String, Option<String>)>> {
        let Some(a) = self.rest.next() else {
            return Ok(None);
        };
        if a == "-h" || a == "--help" {
            self.help = true;
            return self.next_opt();
        }
        if !a.starts_with('-') || a == "-" {
            return Err(usage(format!(
                "unexpected argument {a:?} for `mainstream {}`; see `mainstream {} --help`",
                self.cmd, self.cmd
            )));
        }
        Ok(Some(match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a, None),
        }))
    }

    fn value(&mut self, opt: &str, inline: Option<String>, what: &str) -> Result<String> {
        match inline.or_else(|| self.rest.next()) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(usage(format!("{opt} needs a value: {what}"))),
        }
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        opt: &str,
        inline: Option<String>,
        what: &str,
    ) -> Result<T> {
        let v = self.value(opt, inline, what)?;
        v.parse()
            .map_err(|_| usage(format!("{opt} {v:?} is not valid: expected {what}")))
    }

    fn no_value(opt: &str, inline: &Option<String>) -> Result<()> {
        match inline {
            Some(_) => Err(usage(format!("{opt} takes no value"))),
            None => Ok(()),
        }
    }

    fn unknown(&self, opt: &str) -> Error {
        usage(format!(
            "unknown option {opt} for `mainstream {}`; see `mainstream {} --help`",
            self.cmd, self.cmd
        ))
    }
}

/// Parses the process arguments (without the program name).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command> {
    let mut strings = Vec::new();
    for a in args {
        match a.into_string() {
            Ok(s) => strings.push(s),
            Err(a) => return Err(usage(format!("argument {a:?} is not valid UTF-8"))),
        }
    }
    let mut it = strings.into_iter();
    let Some(first) = it.next() else {
        return Ok(Command::Help(None));
    };
    let cmd: &'static str = match first.as_str() {
        "-h" | "--help" => return Ok(Command::Help(None)),
        "-V" | "--version" => return Ok(Command::Version),
        "help" => {
            // `help --help` is help about help: the overview.
            let topic = it.next().filter(|t| t != "-h" && t != "--help");
            if let Some(extra) = it.next() {
                return Err(usage(format!(
                    "unexpected argument {extra:?} after `help {}`",
                    topic.unwrap_or_default()
                )));
            }
            if let Some(t) = &topic {
                if help_for(Some(t)).is_none() {
                    return Err(usage(format!(
                        "no such command {t:?}; see `mainstream --help`"
                    )));
                }
            }
            return Ok(Command::Help(topic));
        }
        name => match COMMANDS.iter().find(|(n, _)| *n == name) {
            Some((n, _)) => n,
            None => {
                let names: Vec<&str> = COMMANDS.iter().map(|(n, _)| *n).collect();
                return Err(usage(format!(
                    "unknown command {name:?}; commands are: {}",
                    names.join(", ")
                )));
            }
        },
    };
    let mut a = Args {
        cmd,
        rest: it.collect::<Vec<_>>().into_iter(),
        help: false,
    };
    let mut config = PathBuf::from(DEFAULT_CONFIG);
    let mut json = false;
    let mut profile_runs = 7u32;
    let mut budget = None;
    let mut strategy = crate::planner::Strategy::Auto;
    let mut duration = None;
    let mut watch = true;
    let mut cam_test: Option<PathBuf> = None;
    let mut cam_format = crate::frame::PixelFormat::Mjpeg;
    let mut cam_size = (640u32, 480u32);
    let mut cam_fps = 30.0f64;
    let mut cam_frames = 100u32;
    let mut write = false;
    if cmd == "demo" || cmd == "replay" || cmd == "calibrate" {
        config = PathBuf::from("demo/config.toml");
    }
    let mut replay = crate::replay::ReplayArgs {
        config: PathBuf::new(),
        camera: None,
        clip: None,
        truth: None,
        apps: None,
        budgets: Vec::new(),
        strategies: Vec::new(),
        phase_seeds: Vec::new(),
        branch: None,
        fps: None,
        frames: None,
        charge: crate::replay::Charge::Network,
        tolerance: crate::truth::TOLERANCE_FRAMES,
        json: false,
    };
    let mut workloads = 100usize;
    let mut seed = crate::planner::simulate::DEFAULT_SEED;
    let mut bench = crate::bench::BenchArgs {
        base: PathBuf::from("models/mobilenet_v2/manifest.toml"),
        apps: vec![1, 2, 4, 8],
        sharing: vec![Sharing::None, Sharing::Mid, Sharing::Max],
        frames: 20,
        runs: 5,
        processes: false,
        json: false,
        inputs: Vec::new(),
        threads: 1,
        cameras: 1,
    };
    while let Some((opt, inline)) = a.next_opt()? {
        match (cmd, opt.as_str()) {
            ("profile", "--runs") => {
                profile_runs = a.number(&opt, inline, "a whole number of runs from 1 to 1000")?;
                if !(1..=1000).contains(&profile_runs) {
                    return Err(usage(format!(
                        "--runs {profile_runs} is out of range 1..=1000"
                    )));
                }
            }
            ("replay", "--strategy") => {
                let v = a.value(&opt, inline, "a comma-separated list of planner names")?;
                replay.strategies = parse_list(
                    &opt,
                    &v,
                    crate::planner::Strategy::parse,
                    "mainstream, greedy, exact, heuristic, max-min, max-sharing or no-sharing",
                )?;
            }
            ("replay", "--budget") => {
                let v = a.value(&opt, inline, "a comma-separated list of cores, e.g. 0.25,1")?;
                replay.budgets = parse_list(
                    &opt,
                    &v,
                    |x| {
                        x.parse::<f64>()
                            .ok()
                            .filter(|b| b.is_finite() && *b > 0.0 && *b <= 1024.0)
                    },
                    "cores above 0 and at most 1024",
                )?;
            }
            ("replay" | "calibrate", "--camera") => {
                replay.camera = Some(a.value(&opt, inline, "a camera name from the config")?);
            }
            ("replay" | "calibrate", "--clip") => {
                replay.clip = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "an MJPEG file, .y4m file or directory of JPEGs",
                )?));
            }
            ("replay" | "calibrate", "--truth") => {
                replay.truth = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "a ground-truth TOML file",
                )?));
            }
            ("replay" | "calibrate", "--apps") => {
                let v = a.value(&opt, inline, "a comma-separated list of app names")?;
                replay.apps = Some(parse_list(
                    &opt,
                    &v,
                    |x| (!x.is_empty()).then(|| x.to_owned()),
                    "app names",
                )?);
            }
            ("replay", "--phase-seed") => {
                let v = a.value(&opt, inline, "a comma-separated list of whole numbers")?;
                replay.phase_seeds =
                    parse_list(&opt, &v, |x| x.parse::<u64>().ok(), "whole numbers")?;
            }
            ("replay" | "calibrate", "--frames") => {
                let n: u64 = a.number(&opt, inline, "a whole number of frames above 0")?;
                if n == 0 {
                    return Err(usage("--frames 0: expected at least 1 frame".into()));
                }
                replay.frames = Some(n);
            }
            ("replay", "--branch") => {
                replay.branch = Some(a.number(&opt, inline, "a branch point index, e.g. 20")?);
            }
            ("replay", "--fps") => {
                let f: f64 = a.number(&opt, inline, "frames per second above 0")?;
                if !(f.is_finite() && f > 0.0 && f <= 1000.0) {
                    return Err(usage(format!(
                        "--fps {f} is out of range: expected above 0 and at most 1000"
                    )));
                }
                replay.fps = Some(f);
            }
            ("replay", "--charge") => {
                let v = a.value(&opt, inline, "network or all")?;
                replay.charge = match v.as_str() {
                    "network" => crate::replay::Charge::Network,
                    "all" => crate::replay::Charge::All,
                    _ => {
                        return Err(usage(format!(
                            "--charge {v:?} is not valid: expected network or all"
                        )))
                    }
                };
            }
            ("replay" | "calibrate", "--tolerance") => {
                replay.tolerance =
                    a.number(&opt, inline, "a whole number of frames from 0 to 1000")?;
                if replay.tolerance > 1000 {
                    return Err(usage(format!(
                        "--tolerance {} is out of range 0..=1000",
                        replay.tolerance
                    )));
                }
            }
            ("run" | "demo", "--strategy") => {
                let v = a.value(&opt, inline, "a planner name")?;
                strategy = crate::planner::Strategy::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--strategy {v:?} is not valid: expected mainstream, greedy, exact, heuristic, max-min, max-sharing or no-sharing"
                    ))
                })?;
            }
            ("run", "--duration") => {
                let s: f64 = a.number(&opt, inline, "seconds above 0")?;
                if !(s.is_finite() && s > 0.0 && s <= 1e9) {
                    return Err(usage(format!(
                        "--duration {s} is out of range: expected seconds above 0"
                    )));
                }
                duration = Some(std::time::Duration::from_secs_f64(s));
            }
            ("cameras", "--test") => {
                cam_test = Some(PathBuf::from(a.value(
                    &opt,
                    inline,
                    "a device node such as /dev/video0",
                )?));
            }
            ("cameras", "--format") => {
                let v = a.value(&opt, inline, "mjpeg, yuyv, grey or rgb24")?;
                cam_format = crate::frame::PixelFormat::parse(&v).ok_or_else(|| {
                    usage(format!(
                        "--format {v:?} is not valid: expected mjpeg, yuyv, grey or rgb24"
                    ))
                })?;
            }
            ("cameras", "--size") => {
                let v = a.value(&opt, inline, "WIDTHxHEIGHT, e.g. 640x480")?;
                cam_size = v
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .filter(|&(w, h): &(u32, u32)| (16..=8192).contains(&w) && (16..=8192).contains(&h))
                    .ok_or_else(|| usage(format!("--size {v:?} is not valid: expected WIDTHxHEIGHT within 16..=8192, e.g. 640x480")))?;
            }
            ("cameras", "--fps") => {
                cam_fps = a.number(&opt, inline, "frames per second above 0, at most 240")?;
                if !(cam_fps.is_finite() && cam_fps > 0.0 && cam_fps <= 240.0) {
                    return Err(usage(format!(
                        "--fps {cam_fps} is out of range: expected above 0 and at most 240"
                    )));
                }
            }
            ("cameras", "--frames") => {
                cam_frames = a.number(&opt, inline, "a whole number of frames from 1 to 100000")?;
                if !(1..=100_000).contains(&cam_frames) {
                    return Err(usage(format!(
                        "--frames {cam_frames} is out of range 1..=100000"
                    )));
                }
            }
            ("run", "--no-watch") => {
                Args::no_value(&opt, &inline)?;
                watch = false;
            }
            (
                "check" | "plan" | "profile" | "run" | "demo" | "status" | "replay" | "calibrate",
                "-c" | "--config",
            ) => {
                config = PathBuf::from(a.value(&opt, inline, "the configuration file")?);
            }
            ("bench", "--apps") => {
                let v = a.value(
                    &opt,
                    inline,
                    "a comma-separated list of app counts, e.g. 1,2,4,8",
                )?;
                bench.apps = parse_list(
                    &opt,
                    &v,
                    |x| x.parse::<usize>().ok().filter(|n| (1..=64).contains(n)),
                    "app counts from 1 to 64",
                )?;
            }
            ("bench", "--sharing") => {
                let v = a.value(&opt, inline, "a comma-separated list of none, mid, max")?;
                bench.sharing = parse_list(&opt, &v, Sharing::parse, "none, mid or max")?;
            }
            ("bench", "--frames") => {
                bench.frames =
                    a.number(&opt, inline, "a whole number of frames from 1 to 100000")?;
                if !(1..=100_000).contains(&bench.frames) {
                    return Err(usage(format!(
                        "--frames {} is out of range 1..=100000",
                        bench.frames
                    )));
                }
            }
            ("bench", "--runs") => {
                bench.runs = a.number(&opt, inline, "a whole number of runs from 1 to 100")?;
                if !(1..=100).contains(&bench.runs) {
                    return Err(usage(format!(
                        "--runs {} is out of range 1..=100",
                        bench.runs
                    )));
                }
            }
            ("bench", "--threads") => {
                bench.threads = a.number(&opt, inline, "a number of threads from 1 to 64")?;
                if !(1..=64).contains(&bench.threads) {
                    return Err(usage(format!(
                        "--threads {} is out of range 1..=64",
                        bench.threads
                    )));
                }
            }
            ("bench", "--cameras") => {
                bench.cameras = a.number(&opt, inline, "a number of cameras from 1 to 16")?;
                if !(1..=16).contains(&bench.cameras) {
                    return Err(usage(format!(
                        "--cameras {} is out of range 1..=16",
                        bench.cameras
                    )));
                }
            }
            ("bench", "--processes") => {
                Args::no_value(&opt, &inline)?;
                bench.processes = true;
            }
            ("bench", "--base") => {
                bench.base =
                    PathBuf::from(a.value(&opt, inline, "the base network's manifest.toml")?)
            }
            ("bench", "--input") => bench.inputs.push(PathBuf::from(a.value(
                &opt,
                inline,
                "a raw f32 input tensor file",
            )?)),
            (
                "cameras" | "plan" | "simulate" | "bench" | "demo" | "status" | "replay"
                | "calibrate",
                "--json",
            ) => {
                Args::no_value(&opt, &inline)?;
                json = true;
            }
            ("plan" | "run" | "demo", "--budget") => {
                let b: f64 = a.number(&opt, inline, "a number of cores above 0, e.g. 1.5")?;
                if !(b.is_finite() && b > 0.0 && b <= 1024.0) {
                    return Err(usage(format!(
                        "--budget {b} is out of range: expected cores above 0 and at most 1024"
                    )));
                }
                budget = Some(b);
            }
            ("simulate", "--workloads") => {
                workloads =
                    a.number(&opt, inline, "a whole number of workloads from 1 to 100000")?;
                if !(1..=100_000).contains(&workloads) {
                    return Err(usage(format!(
                        "--workloads {workloads} is out of range 1..=100000"
                    )));
                }
            }
            ("calibrate", "--write") => {
                Args::no_value(&opt, &inline)?;
                write = true;
            }
            ("simulate", "--seed") => {
                seed = a.number(&opt, inline, "a whole number")?;
            }
            _ => return Err(a.unknown(&opt)),
        }
    }
    if a.help {
        return Ok(Command::Help(Some(cmd.to_owned())));
    }
    Ok(match cmd {
        "check" => Command::Check { config },
        "run" | "demo" => {
            let run = RunArgs {
                config,
                strategy,
                budget,
                status_line: cmd == "demo",
                watch: watch && cmd == "run",
                duration,
            };
            if cmd == "run" {
                Command::Run(run)
            } else {
                Command::Demo { run, json }
            }
        }
        "status" => Command::Status { config, json },
        "replay" => {
            if replay.strategies.is_empty() {
                replay.strategies = vec![crate::planner::Strategy::Auto];
            }
            Command::Replay(crate::replay::ReplayArgs {
                config,
                json,
                ..replay
            })
        }
        "calibrate" => Command::Calibrate(crate::calibrate::CalibrateArgs {
            select: crate::replay::ReplayArgs {
                config,
                json,
                ..replay
            },
            write,
        }),
        "cameras" => match cam_test {
            Some(path) => Command::CameraTest {
                spec: crate::camera::SourceSpec {
                    path,
                    width: cam_size.0,
                    height: cam_size.1,
                    fps: cam_fps,
                    format: cam_format,
                    pace: crate::camera::Pace::Nominal,
                },
                frames: cam_frames,
            },
            None => Command::Cameras { json },
        },
        "plan" => Command::Plan {
            config,
            budget,
            json,
        },
        "simulate" => Command::Simulate(SimulateArgs {
            json,
            workloads,
            seed,
        }),
        "profile" => Command::Profile {
            config,
            runs: profile_runs,
        },
        "bench" => {
            bench.json = json;
            if bench.inputs.is_empty() {
                bench.inputs = ["coffee", "chelsea", "rocket"]
                    .iter()
                    .map(|p| PathBuf::from(format!("tests/fixtures/imagenet/{p}.input.f32")))
                    .collect();
            }
            Command::Bench(bench)
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("command {cmd} has no parser"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_shows_help() {
        assert_eq!(p(&[]).unwrap(), Command::Help(None));
    }

    #[test]
    fn check_takes_config_in_both_spellings() {
        let want = Command::Check {
            config: "x.toml".into(),
        };
        assert_eq!(p(&["check", "--config", "x.toml"]).unwrap(), want);
        assert_eq!(p(&["check", "--config=x.toml"]).unwrap(), want);
        assert_eq!(p(&["check", "-c", "x.toml"]).unwrap(), want);
        assert_eq!(
            p(&["check"]).unwrap(),
            Command::Check {
                config: DEFAULT_CONFIG.into()
            }
        );
    }

    #[test]
    fn help_after_a_command_shows_that_commands_help() {
        assert_eq!(
            p(&["plan", "--help"]).unwrap(),
            Command::Help(Some("plan".into()))
        );
        assert_eq!(
            p(&["help", "check"]).unwrap(),
            Command::Help(Some("check".into()))
        );
    }

    #[test]
    fn mistakes_are_usage_errors_that_name_the_option() {
        for (args, needle) in [
            (&["frobnicate"][..], "unknown command \"frobnicate\""),
            (&["check", "--confg", "x"][..], "unknown option --confg"),
            (&["check", "--config"][..], "--config needs a value"),
            (
                &["plan", "--budget", "lots"][..],
                "--budget \"lots\" is not valid",
            ),
            (&["plan", "--budget", "-1"][..], "out of range"),
            (&["cameras", "--json=yes"][..], "--json takes no value"),
            (&["check", "stray"][..], "unexpected argument \"stray\""),
            (&["help", "nope"][..], "no such command"),
        ] {
            let e = p(args).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn every_command_has_help() {
        for c in ["check", "cameras", "plan", "simulate", "bench", "profile"] {
            assert!(help_for(Some(c)).is_some(), "{c}");
            assert!(HELP.contains(c), "{c} missing from top-level help");
        }
    }
}
