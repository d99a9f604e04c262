//! What a configuration reload may change while the service runs.
//!
//! Apps, budgets and X-voting are re-planned and swapped into the running
//! camera threads between two frames. The cameras, the base network and the
//! state directory are not: the camera threads own their devices, every tree
//! is cut from the loaded base, and the event log and state files are open in
//! the state directory. A reload that changes one of them is refused (the
//! running plan stays) until the service is restarted.

use crate::config::Config;

/// What in `new` cannot be applied to a service running `running` (`None`:
/// the reload can be applied).
pub(crate) fn needs_restart(running: &Config, new: &Config) -> Option<&'static str> {
    if new.cameras != running.cameras {
        Some("the [[camera]] entries")
    } else if new.device.base != running.device.base {
        Some("the base network")
    } else if new.device.state_dir != running.device.state_dir {
        Some("the state directory")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn demo() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/config.toml");
        crate::config::load(&path)
            .unwrap_or_else(|r| panic!("demo config: {:?}", r.errors))
            .0
    }

    #[test]
    fn new_apps_budgets_and_voting_are_applied_without_a_restart() {
        let running = demo();
        let mut new = running.clone();
        new.device.budget_cores *= 2.0;
        new.apps[0].voting += 1;
        new.apps[1].enabled = !new.apps[1].enabled;
        assert_eq!(needs_restart(&running, &new), None);
    }

    #[test]
    fn a_changed_camera_base_or_state_directory_needs_a_restart() {
        let running = demo();
        let mut camera = running.clone();
        camera.cameras[0].fps += 1.0;
        assert_eq!(
            needs_restart(&running, &camera),
            Some("the [[camera]] entries")
        );
        let mut base = running.clone();
        base.device.base = base.device.base.join("other.toml");
        assert_eq!(needs_restart(&running, &base), Some("the base network"));
        let mut state = running.clone();
        state.device.state_dir = state.device.state_dir.join("elsewhere");
        assert_eq!(needs_restart(&running, &state), Some("the state directory"));
    }
}
