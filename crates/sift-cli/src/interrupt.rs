//! Ctrl-C (SIGINT) and SIGTERM for `sift rerank`: instead of ending the process where it
//! stands, each signal is handed to a function on a thread of its own, so that a batch can
//! finish the request in progress and say how to resume, and a single request can say that it
//! was interrupted.

/// A signal that asks `sift` to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
    /// SIGTERM: `kill`, a service manager, a job scheduler.
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "SIGINT",
            Self::Terminate => "SIGTERM",
        }
    }

    /// The status shells give a process ended by this signal (128 + its number), so that a
    /// script sees the same status as if `sift` had not caught it.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

/// Calls `handler` on a thread of its own for every SIGINT and SIGTERM from now on; they no
/// longer end the process (the handler may, with `std::process::exit`). Where there are no Unix
/// signals nothing is installed, and Ctrl-C ends the process as it always did.
#[cfg(unix)]
pub fn on_signal(mut handler: impl FnMut(Signal) + Send + 'static) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for number in signals.forever() {
                handler(if number == SIGTERM {
                    Signal::Terminate
                } else {
                    Signal::Interrupt
                });
            }
        })
        .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
    Ok(())
}

#[cfg(not(unix))]
pub fn on_signal(_handler: impl FnMut(Signal) + Send + 'static) -> Result<(), String> {
    Ok(())
}
