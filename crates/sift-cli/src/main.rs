//! `sift`: the command line over the `sift` library. It parses arguments, reads requests,
//! finds the model and prints results; everything that decides a score is in the library.

mod model_source;
mod output;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sift::{Backend, Content, ImageSource, Request, RerankOptions, Reranker, VideoSource};

#[derive(Parser)]
#[command(
    name = "sift",
    version,
    about = "Rerank documents against a query with Qwen3-VL-Reranker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score documents against a query, best first.
    ///
    ///   sift rerank --model DIR REQUEST.json          (JSON in, JSON out; `-` reads stdin)
    ///   sift rerank --model DIR --query TEXT DOC...   (files or literal texts; prints a table)
    ///   sift rerank --model DIR --batch FILE.jsonl    (one request per line, one result per line)
    #[command(verbatim_doc_comment)]
    Rerank(RerankArgs),
    /// Convert a model to sift's 4-bit format (Q4 weights in checked shards of at most 256 MB),
    /// the format of the browser build.
    Quantize(QuantizeArgs),
}

#[derive(Args)]
struct QuantizeArgs {
    /// A model directory, or a Hugging Face model id (as for `rerank`).
    #[arg(long)]
    model: String,
    /// The directory to write (created if missing).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct RerankArgs {
    /// A model directory, or a Hugging Face model id such as Qwen/Qwen3-VL-Reranker-2B
    /// (found in, or downloaded to, the Hugging Face cache).
    #[arg(long)]
    model: String,
    /// The request file (`-` for stdin); with --query, the documents: files or literal texts.
    inputs: Vec<String>,
    /// Quick form: the query text; the positional arguments are the documents.
    #[arg(long, conflicts_with = "batch")]
    query: Option<String>,
    /// The instruction, in the quick form (a request file carries its own).
    #[arg(long, requires = "query")]
    instruction: Option<String>,
    /// A JSON Lines file of requests: results stream out one line per request, in order.
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Print only the K best documents.
    #[arg(long, value_name = "K")]
    top_n: Option<usize>,
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Tokens kept before the prompt's 5-token suffix; longer document text is cut.
    #[arg(long, default_value_t = 10240)]
    max_length: usize,
    /// Most image and video tokens in one (query, document) pair; a pair above it is an error
    /// rather than an out-of-memory crash.
    #[arg(long, default_value_t = sift::DEFAULT_MAX_VISUAL_TOKENS)]
    max_visual_tokens: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Gpu,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Rerank(args) => rerank(args),
        Command::Quantize(args) => quantize(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn quantize(args: QuantizeArgs) -> Result<(), String> {
    let model_dir = model_source::resolve(&args.model)?;
    let report = sift::quantize(&model_dir, &args.out).map_err(|e| e.to_string())?;
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "{} tensors ({} in Q4): {:.1} MB -> {:.1} MB in {} shard(s) in {}",
        report.tensors,
        report.q4_tensors,
        mb(report.source_bytes),
        mb(report.shard_bytes),
        report.shards,
        args.out.display()
    );
    Ok(())
}

fn rerank(args: RerankArgs) -> Result<(), String> {
    let model_dir = model_source::resolve(&args.model)?;
    let options = RerankOptions {
        backend: match args.device {
            DeviceArg::Cpu => Backend::Cpu,
            DeviceArg::Gpu => Backend::Gpu,
        },
        max_length: args.max_length,
        max_visual_tokens: args.max_visual_tokens,
        ..RerankOptions::default()
    };
    let reranker = Reranker::load(&model_dir, options).map_err(|e| e.to_string())?;
    if let Some(batch) = &args.batch {
        if !args.inputs.is_empty() {
            return Err("--batch takes no other positional arguments".into());
        }
        return run_batch(&reranker, batch, args.top_n);
    }
    if let Some(query) = args.query {
        let request = quick_request(query, args.instruction, &args.inputs)?;
        let scores = score_with_progress(&reranker, &request);
        print!(
            "{}",
            output::table(&request, &args.inputs, &scores, args.top_n)
        );
        return Ok(());
    }
    let [path] = args.inputs.as_slice() else {
        return Err("give one request file (or `-` for stdin), or use --query or --batch".into());
    };
    let (text, base) = read_request(path)?;
    let request = Request::from_json(&text, &base).map_err(|e| e.to_string())?;
    let scores = score_with_progress(&reranker, &request);
    println!("{}", sift::results_json(&scores, args.top_n));
    Ok(())
}

/// The request text and the directory its relative paths start from.
fn read_request(path: &str) -> Result<(String, PathBuf), String> {
    let (bytes, base) = if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the request from stdin: {e}"))?;
        (bytes, std::env::current_dir().unwrap_or_default())
    } else {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read the request {path}: {e}"))?;
        let base = Path::new(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        (bytes, base)
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "the request {path} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8 JSON",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((text, base))
}

const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv", "avi"];

/// The quick form's documents: an existing image, video or text file, or literal text.
fn quick_request(
    query: String,
    instruction: Option<String>,
    docs: &[String],
) -> Result<Request, String> {
    if docs.is_empty() {
        return Err("--query needs at least one document after it".into());
    }
    let documents = docs
        .iter()
        .map(|doc| {
            let path = Path::new(doc);
            if !path.is_file() {
                return Ok(Content::text(doc.clone()));
            }
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .unwrap_or_default();
            if IMAGE_EXTENSIONS.contains(&extension.as_str()) {
                Ok(Content::image(ImageSource::Path(path.to_path_buf())))
            } else if VIDEO_EXTENSIONS.contains(&extension.as_str()) {
                Ok(Content::video(VideoSource::Path(path.to_path_buf())))
            } else {
                std::fs::read_to_string(path)
                    .map(Content::text)
                    .map_err(|e| format!("cannot read {doc} as UTF-8 text: {e}"))
            }
        })
        .collect::<Result<_, String>>()?;
    Ok(Request {
        instruction,
        query: Content::text(query),
        documents,
        ..Request::default()
    })
}

fn progress_bar(total: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    let template = format!("{{pos}}/{{len}} {unit} [{{bar:30}}] {{per_sec}}, ETA {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn score_with_progress(reranker: &Reranker, request: &Request) -> Vec<Result<f32, sift::DocError>> {
    let bar = progress_bar(request.documents.len(), "documents");
    let scores = reranker.score_each(request, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    scores
}

/// One result line per request line, streamed in order; a bad line gives an error line.
fn run_batch(reranker: &Reranker, path: &Path, top_n: Option<usize>) -> Result<(), String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<Vec<u8>> = BufReader::new(file)
        .split(b'\n')
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&[u8]> = lines
        .iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let bar = progress_bar(lines.len(), "requests");
    let mut stdout = std::io::stdout().lock();
    for (number, line) in lines.iter().enumerate() {
        let parsed = std::str::from_utf8(line)
            .map_err(|e| {
                format!(
                    "not UTF-8 text (invalid byte at offset {})",
                    e.valid_up_to()
                )
            })
            .and_then(|text| Request::from_json(text, &base).map_err(|e| e.to_string()));
        let out = match parsed {
            Ok(request) => sift::results_json(&reranker.score(&request), top_n),
            Err(e) => serde_json::json!({ "error": format!("request {}: {e}", number + 1) }),
        };
        writeln!(stdout, "{out}")
            .and_then(|()| stdout.flush())
            .map_err(|e| format!("cannot write the results: {e}"))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}
