//! Every exit code foil returns, decided here: what a command's outcome
//! or error means to the shell, and what a second Ctrl-C does.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done (or a closed pipe: `foil inspect DIR \| head`) |
//! | 1 | the run failed; what was committed is kept |
//! | 2 | bad usage or config: fix the command line or pipeline file |
//! | 3 | done, but some sources are in the dead letters (or annotations set aside) |
//! | 4 | stopped at a budget; rerun with a larger one to resume |
//! | 128 + n | stopped by signal n (130 for Ctrl-C, 143 for SIGTERM) |

use std::process::ExitCode;
use std::sync::Arc;

use crate::UsageError;
use crate::runtime::{Stop, StopReason};

/// How a command ended, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failed,
    Usage,
    /// Finished with sources in the dead letters, or annotations set aside.
    DeadLetters,
    /// Stopped cleanly at a budget (resumable).
    Budget,
    /// Stopped by this signal (resumable).
    Signal(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::DeadLetters => 3,
            Exit::Budget => 4,
            Exit::Signal(n) => (128 + n).clamp(0, 255) as u8,
        }
    }

    /// The exit for an error a command returned: usage when a
    /// [`UsageError`] is anywhere in the chain, success for a closed pipe
    /// (the reader went away, nothing failed), failure otherwise.
    pub fn for_error(err: &anyhow::Error) -> Exit {
        let chain = || err.chain();
        if chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        }) {
            Exit::Success
        } else if chain().any(|c| c.downcast_ref::<UsageError>().is_some()) {
            Exit::Usage
        } else {
            Exit::Failed
        }
    }

    /// For a run that stopped early for `reason`.
    pub fn for_stop(reason: &StopReason) -> Exit {
        match reason {
            StopReason::Signal(n) => Exit::Signal(*n),
            StopReason::Budget(_) => Exit::Budget,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Stop the run on SIGINT/SIGTERM after the items in flight; a second
/// signal exits at once (committed output is consistent at any instant).
/// Call inside the async runtime; abort the handle when the run is over.
pub fn watch_signals(stop: Arc<Stop>) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).ok()?;
    let mut term = signal(SignalKind::terminate()).ok()?;
    Some(tokio::spawn(async move {
        let which = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        eprintln!("foil: stopping after the items in flight; signal again to quit now");
        stop.request(StopReason::Signal(which));
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        std::process::exit(Exit::Signal(which).code().into());
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_codes() {
        let usage = anyhow::Error::new(UsageError::new("bad flag")).context("reading the config");
        assert_eq!(Exit::for_error(&usage), Exit::Usage);
        let pipe = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("printing");
        assert_eq!(Exit::for_error(&pipe), Exit::Success);
        assert_eq!(Exit::for_error(&anyhow::anyhow!("disk full")), Exit::Failed);
        assert_eq!(Exit::for_stop(&StopReason::Signal(15)).code(), 143);
        assert_eq!(
            Exit::for_stop(&StopReason::Budget("x".into())),
            Exit::Budget
        );
        assert_eq!(Exit::DeadLetters.code(), 3);
    }
}
