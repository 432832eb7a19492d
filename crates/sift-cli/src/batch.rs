//! `sift rerank --batch`: one request per input line, one result line per request, in order,
//! with nothing lost to a bad line, a crashed forward pass, Ctrl-C or a kill.
//!
//! - Lines are read one at a time as they arrive (from a file, or from stdin with `--batch -`),
//!   each at most [`MAX_LINE_BYTES`] (`sift::batch` reads them): a longer line is that request's error and is skipped
//!   without being held, so a line without an end cannot take the host's memory.
//! - Request N is the Nth line of the input. A blank line counts but gives no result. Every
//!   result carries `"line": N`, and the request's top-level `"id"` if it has one.
//! - Each result line, its `\n` included, is one `write_all` flushed at once, so a kill leaves
//!   whole lines only (or, if the disk fills mid-write, one partial last line that `--resume`
//!   drops).
//! - `--resume OUT` skips the input lines whose results OUT already holds and appends new
//!   results to OUT instead of printing them.
//! - SIGINT and SIGTERM: the request in progress is finished and its line written, then the
//!   batch stops, says how many requests were done and how to resume, and exits with 130 or 143.
//!   A second signal stops at once.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use sift::Reranker;
use sift::batch::{self, Line, LineReader, MAX_LINE_BYTES, ResultsFileError};

use crate::interrupt::{self, Signal};

/// What `--batch` was given.
pub struct Batch<'a> {
    /// The JSON Lines file of requests; `-` is stdin.
    pub input: &'a Path,
    /// `--resume OUT`: the results file to skip the done lines of and append to.
    pub resume: Option<&'a Path>,
    pub top_n: Option<usize>,
}

/// Runs the batch: `load` is called once the input and the results file are open, so a wrong
/// path is reported before the model is loaded.
pub fn run(
    batch: &Batch,
    load: impl FnOnce() -> Result<Reranker, String>,
) -> Result<ExitCode, String> {
    let from_stdin = batch.input == Path::new("-");
    let input_name = if from_stdin {
        "stdin".to_string()
    } else {
        batch.input.display().to_string()
    };
    let (source, base, input_bytes) = if from_stdin {
        (
            Source::Stdin,
            std::env::current_dir().unwrap_or_default(),
            None,
        )
    } else {
        let file = File::open(batch.input).map_err(|e| format!("cannot read {input_name}: {e}"))?;
        let length = file.metadata().ok().map(|m| m.len());
        let base = batch
            .input
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        (Source::File(file), base, length)
    };
    let (mut out, done): (Box<dyn Write>, HashSet<u64>) = match batch.resume {
        Some(path) => {
            let (file, done) = open_results(path)?;
            (Box::new(file), done)
        }
        None => (Box::new(io::stdout().lock()), HashSet::new()),
    };

    let bar = progress_bar(input_bytes);
    let stop = Arc::new(Stop::default());
    let (events_sender, events) = mpsc::channel();
    interrupt::on_signal({
        let (stop, bar, events) = (Arc::clone(&stop), bar.clone(), events_sender.clone());
        move |signal| stop.signalled(signal, &bar, &events)
    })?;
    let mut reranker = load()?;
    let want_line = spawn_reader(source, events_sender);

    let mut number = 0u64;
    let mut written = 0u64;
    let mut eta_is_stale = false;
    let stopped_by = loop {
        if let Some(signal) = stop.signal() {
            break Some(signal);
        }
        // The reader reads one line when asked; it is gone only after the end of the input.
        let _ = want_line.send(());
        let (line, consumed) = match events.recv() {
            Ok(Event::Read(read)) => {
                read.map_err(|e| format!("cannot read {input_name} after line {number}: {e}"))?
            }
            Ok(Event::Signal) => continue,
            Err(_) => return Err(format!("cannot read {input_name}: its reader stopped")),
        };
        let Some(line) = line else { break None };
        number += 1;
        if input_bytes.is_some() {
            bar.set_position(consumed);
        }
        if done.contains(&number) {
            eta_is_stale = true;
            continue;
        }
        let result = match line {
            Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Complete(bytes) => {
                stop.in_progress.store(number, Ordering::SeqCst);
                if std::mem::take(&mut eta_is_stale) {
                    bar.reset_eta();
                }
                answer(&reranker, &bytes, &base, number, batch.top_n)
            }
            Line::TooLong => failed(
                number,
                None,
                format!(
                    "the line is longer than {} MiB, the most one request may take; it was skipped",
                    MAX_LINE_BYTES >> 20
                ),
            ),
        };
        write_line(&mut out, &result).map_err(|e| format!("cannot write the results: {e}"))?;
        stop.in_progress.store(0, Ordering::SeqCst);
        written += 1;
        bar.set_message(format!("{written} requests"));
        if reranker.needs_reload() {
            bar.suspend(|| {
                eprintln!("request {number}: the model stopped on a document; loading it again");
            });
            reranker = reranker
                .reloaded()
                .map_err(|e| format!("the model could not be loaded again: {e}"))?;
        }
    };
    bar.finish_and_clear();
    let Some(signal) = stopped_by else {
        if let Some(path) = batch.resume {
            eprintln!(
                "{written} results appended to {} ({} were there already)",
                path.display(),
                done.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let how_to_resume = match batch.resume {
        Some(path) => format!(
            "To go on, run the same command again: --resume {} skips the lines done.",
            path.display()
        ),
        None => "To go on, keep the result lines printed so far in a file and run the same \
                 command with --resume FILE: the lines FILE holds results of are skipped, and \
                 new results are appended to FILE instead of printed."
            .to_string(),
    };
    let reached = match number {
        0 => "no input line was read".to_string(),
        _ => format!("every input line up to {number} is done"),
    };
    eprintln!(
        "stopped by {}: {written} requests done in this run, {reached}. {how_to_resume}",
        signal.name()
    );
    Ok(ExitCode::from(signal.exit_code()))
}

/// Where the requests come from; stdin is locked on the reader's own thread.
enum Source {
    Stdin,
    File(File),
}

enum Event {
    /// A line (or the end of the input, `None`) and the bytes read so far.
    Read(io::Result<(Option<Line>, u64)>),
    /// SIGINT or SIGTERM arrived (what it was is in [`Stop`]).
    Signal,
}

/// Starts the thread that reads the input, one line each time the returned sender is sent
/// `()`. It reads on a thread of its own so that a signal can end a batch waiting on stdin.
fn spawn_reader(source: Source, events: mpsc::Sender<Event>) -> mpsc::Sender<()> {
    let (want_line, wanted) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let input: Box<dyn BufRead> = match source {
            Source::Stdin => Box::new(io::stdin().lock()),
            Source::File(file) => Box::new(BufReader::new(file)),
        };
        let mut lines = LineReader::new(input, MAX_LINE_BYTES);
        for () in wanted {
            let read = lines.next_line();
            let last = !matches!(read, Ok(Some(_)));
            let read = read.map(|line| (line, lines.consumed()));
            if events.send(Event::Read(read)).is_err() || last {
                break;
            }
        }
    });
    want_line
}

/// What the signal thread tells the batch.
#[derive(Default)]
struct Stop {
    signal: Mutex<Option<Signal>>,
    /// The input line being scored, 0 between requests.
    in_progress: AtomicU64,
}

impl Stop {
    fn signal(&self) -> Option<Signal> {
        *self.signal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first signal asks the batch to stop after the request in progress; a second one ends
    /// the process at once.
    fn signalled(&self, signal: Signal, bar: &ProgressBar, events: &mpsc::Sender<Event>) {
        let first = {
            let mut stored = self.signal.lock().unwrap_or_else(PoisonError::into_inner);
            let first = stored.is_none();
            stored.get_or_insert(signal);
            first
        };
        let line = self.in_progress.load(Ordering::SeqCst);
        if !first {
            bar.suspend(|| {
                eprint!("{}: stopping at once", signal.name());
                if line > 0 {
                    eprint!(
                        "; the result of line {line} is not written (--resume scores it again)"
                    );
                }
                eprintln!();
            });
            std::process::exit(signal.exit_code().into());
        }
        if line > 0 {
            bar.suspend(|| {
                eprintln!(
                    "{}: finishing the request on line {line}, then stopping (a second Ctrl-C \
                     or SIGTERM stops at once)",
                    signal.name()
                );
            });
        }
        let _ = events.send(Event::Signal);
    }
}

/// The result line of input line `number`: its ranked results, or why it could not be scored.
fn answer(
    reranker: &Reranker,
    bytes: &[u8],
    base: &Path,
    number: u64,
    top_n: Option<usize>,
) -> Value {
    let read = batch::parse_line(bytes, base);
    match read.request {
        Ok(request) => labelled(
            sift::request_results_json(&request, &reranker.score(&request), top_n),
            number,
            read.id,
        ),
        Err(reason) => failed(number, read.id, reason),
    }
}

/// The error line of input line `number`.
fn failed(number: u64, id: Option<Value>, reason: String) -> Value {
    labelled(
        json!({ "error": format!("request {number}: {reason}") }),
        number,
        id,
    )
}

/// A result with the input line it answers and the request's id.
fn labelled(mut result: Value, number: u64, id: Option<Value>) -> Value {
    if let Value::Object(fields) = &mut result {
        fields.insert("line".into(), number.into());
        if let Some(id) = id {
            fields.insert("id".into(), id);
        }
    }
    result
}

/// Writes one result line whole: a single `write_all` of the line and its `\n`, then a flush,
/// so that no kill leaves part of a line (a formatted write could reach the file in pieces).
fn write_line(out: &mut dyn Write, result: &Value) -> io::Result<()> {
    let mut line = result.to_string().into_bytes();
    line.push(b'\n');
    out.write_all(&line)?;
    out.flush()
}

/// `--resume`: the results file opened to append, and the input lines it holds results of. A
/// last line without its `\n` (a write cut short) is cut off first, so that the file holds whole
/// lines only; that request is scored again. The file is created if missing.
fn open_results(path: &Path) -> Result<(File, HashSet<u64>), String> {
    let name = path.display();
    let context = |e: io::Error| format!("--resume {name}: {e}");
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(context)?;
    let done = batch::read_done_lines(BufReader::new(&file)).map_err(|e| match e {
        ResultsFileError::Io(e) => context(e),
        ResultsFileError::NotAResult { line } => format!(
            "--resume {name}: its line {line} is not a result of `sift rerank --batch` (it has \
             no \"line\"); give --resume the file a batch wrote its results to"
        ),
    })?;
    let length = file.metadata().map_err(context)?.len();
    if length > done.whole_bytes {
        file.set_len(done.whole_bytes).map_err(context)?;
        eprintln!(
            "--resume {name}: dropped its last line, cut short ({} bytes without a newline); \
             that request is scored again",
            length - done.whole_bytes
        );
    }
    Ok((file, done.lines))
}

/// The batch's progress on stderr: by bytes of the input file (with an ETA), or a count of
/// requests for stdin, whose length is unknown.
fn progress_bar(input_bytes: Option<u64>) -> ProgressBar {
    let (bar, template) = match input_bytes {
        Some(length) => (
            ProgressBar::new(length),
            "{msg} [{bar:30}] {percent}%, ETA {eta}",
        ),
        None => (ProgressBar::no_length(), "{msg}, {elapsed}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("0 requests");
    bar
}
