//! The `--help` texts: the overview and one per command.

/// Top-level help.
pub(crate) const HELP: &str = "\
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

pub(super) const HELP_CHECK: &str = "\
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

pub(super) const HELP_RUN: &str = "\
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
and counted per app. Every 10 s from the first analysed frame the measured
CPU use is checked against the prediction (the plan's cost, decoding
included, and the cameras' capture); when they differ by 20% or more twice
in a row, the cost profile is measured again and the apps re-planned.

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

pub(super) const HELP_DEMO: &str = "\
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

pub(super) const HELP_STATUS: &str = "\
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

pub(super) const HELP_CAMERAS: &str = "\
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

pub(super) const HELP_PLAN: &str = "\
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

pub(super) const HELP_SIMULATE: &str = "\
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

pub(super) const HELP_REPLAY: &str = "\
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
                      [--apps LIST] [--camera NAME] [--all-cameras]
                      [--clip FILE] [--truth FILE]
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
    --all-cameras         Plan every camera's apps under the one budget, as the
                          service does (an appliance with several cameras), and
                          replay --camera's frames with its share of the budget:
                          its part of the plan's cost (camera_share in --json),
                          the unplanned rest split in proportion. Replay each
                          camera so to score the whole appliance; --apps may
                          then name apps of any camera
    --clip FILE           Replay this file instead of the camera's source
    --truth FILE          Ground truth [default: the clip's name with
                          .ground_truth.toml, or ground_truth.toml beside it]
    --phase-seed LIST     Start each app's sampling at a random phase instead of
                          on the first frame, as the paper measures; one run
                          per seed, e.g. 1,2,3 (apps that share work keep one
                          grid: a slower app samples a faster one's frames)
    --branch K            Every app at branch point K (a head its package has)
                          instead of the planner's choice; predictions follow
    --fps F               Every app at F frames per second instead of the
                          planner's choice (the budget still holds: frames the
                          box cannot analyse in time are dropped)
    --frames N            Only the first N frames (labelled events are cut there)
    --charge WHAT         What the budget pays for: all (decoding and preprocessing,
                          stem and heads: what the planner counts) or network
                          (stem and heads only, as before issue 22) [default: all]
    --tolerance F         Frames of slack around a labelled event [default: 2]
    --json                One JSON object per run

EXAMPLES:
    mainstream replay
    mainstream replay --strategy no-sharing,max-sharing,mainstream --budget 0.25,1
    mainstream replay --apps birds,vehicles --phase-seed 7 --json
    mainstream replay --apps vehicles --branch 20 --fps 2.5 --phase-seed 1,2,3,4
    mainstream replay --all-cameras --camera gate --budget 0.5 --json
";

pub(super) const HELP_CALIBRATE: &str = "\
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
that hold an event, the miss correlation inside events, and up to 8
quantiles of the windows in which a detection finds an event (each event
plus --tolerance frames on each side; predicted recall is their mean). For
every head but the least-shared it also measures gain_sd: how much of the
head's predicted F1 gain over the least-shared head could be chance, from
1,000 resamples of the object instances that cross the clip (the ground
truth's [[object]] list; blocks of whole events if it has none). The planner
then shares that head only for a gain above z x gain_sd (z = 1.645 with one
shared head, more with several). The same resamples give every head's
accuracy_sd and fpr_sd, which `mainstream plan` turns into an F1 band beside
each planned app (the rates one standard deviation worse and better). With --write,
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

pub(super) const HELP_BENCH: &str = "\
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

pub(super) const HELP_PROFILE: &str = "\
mainstream profile: measure the base network's cost on this machine

Times every segment of the base network (between adjacent branch points) with
tract: 2 warm-up runs, then --runs timed runs, median. Then, for every
configured camera, what its frames cost outside the network: decoding and
preprocessing one frame into the network input (paid once per frame any app
analyses) and capturing one (paid for every frame the camera delivers);
timed on a replay file's first frames, or on a synthetic frame of a device's
configured mode. Times are CPU time of the measuring thread (what a budget of
cores buys), so other load on the machine does not inflate them. Saves the
profile with postcard in the state directory, keyed by the base's SHA-256
and the CPU model; `plan`, `replay` and the service use it and measure what
it lacks themselves (a camera mode it has not timed, or all of it).

USAGE:
    mainstream profile [--config FILE] [--runs R]

OPTIONS:
    -c, --config FILE   Configuration file [default: /etc/mainstream/config.toml]
    --runs R            Timed runs per segment [default: 7]
";
