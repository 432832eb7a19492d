//! `sift`: the command line over the `sift` library. It parses arguments, reads requests,
//! finds the model and prints results; everything that decides a score is in the library.

mod batch;
mod bench;
mod interrupt;
mod model_source;
mod options;
mod output;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sift::{Content, ImageSource, Request, Reranker, VideoSource};

use options::ModelOptions;

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
    ///   sift rerank --model DIR --batch FILE.jsonl    (one request per line, one result per line;
    ///                                                  `-` reads stdin as lines arrive)
    #[command(verbatim_doc_comment)]
    Rerank(RerankArgs),
    /// Serve the rerank HTTP API (Cohere, Jina, vLLM and TEI shapes) on 127.0.0.1:8000.
    ///
    ///   sift serve --model DIR
    ///   curl localhost:8000/v1/rerank -d '{"query": "q", "documents": ["a", "b"]}'
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Convert a model to sift's 4-bit format (Q4 weights in checked shards of at most 256 MB),
    /// the format of the browser build.
    Quantize(QuantizeArgs),
    /// Time reranking on a fixed workload (a 256-token text, a 1024×768 image, 16 frames of
    /// 448²), 1 and 16 documents per query: milliseconds per pair.
    ///
    ///   sift bench --model DIR                         (a model you have)
    ///   sift bench --random 2b --tokenizer DIR         (random weights at the real 2B shape)
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
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
    /// A JSON Lines file of requests (`-`: stdin, read as lines arrive): one result line per
    /// request, in order, with `"line": N` (the request's line; blank lines count but give no
    /// result) and the request's `"id"` if it has one. A line over 64 MiB is that request's error.
    /// Ctrl-C or SIGTERM finishes the request in progress, then stops (exit 130 or 143).
    #[arg(long, value_name = "FILE.jsonl")]
    batch: Option<PathBuf>,
    /// With --batch: the results of an earlier run of the same batch, stopped before its end.
    /// The input lines whose results OUT holds are skipped, and new results are appended to OUT
    /// instead of printed; a partial last line in OUT is cut off first. OUT is created if
    /// missing, so a batch started with --resume OUT goes on after any stop when run again.
    #[arg(long, requires = "batch", value_name = "OUT.jsonl")]
    resume: Option<PathBuf>,
    /// Print only the K best documents.
    #[arg(long, value_name = "K")]
    top_n: Option<usize>,
    #[command(flatten)]
    model_options: ModelOptions,
}

#[derive(Args)]
struct ServeArgs {
    /// A model directory, or a Hugging Face model id (as for `rerank`).
    #[arg(long)]
    model: String,
    /// The address to listen on; 0.0.0.0 exposes the server to the network.
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// The model's name in responses (default: --model as given).
    #[arg(long)]
    served_model_name: Option<String>,
    #[command(flatten)]
    model_options: ModelOptions,
    /// Require `Authorization: Bearer KEY` (every endpoint but /health).
    #[arg(long, env = "SIFT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests that may wait for the model; more get 503 with Retry-After.
    #[arg(long, default_value_t = 64)]
    max_queue: usize,
    /// Largest request body in bytes (images and videos travel in it as data URIs).
    #[arg(long, default_value_t = sift_serve::Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Most documents in one request.
    #[arg(long, default_value_t = sift_serve::Limits::default().max_documents)]
    max_documents: usize,
    /// Most characters in one text.
    #[arg(long, default_value_t = sift_serve::Limits::default().max_text_chars)]
    max_text_chars: usize,
    /// Most frames sampled from one video (a request's max_frames above it is refused).
    #[arg(long, default_value_t = sift_serve::Limits::default().max_video_frames)]
    max_video_frames: usize,
    /// Most images and videos in the query or in one document.
    #[arg(long, default_value_t = sift_serve::Limits::default().max_media_per_item)]
    max_media_per_item: usize,
    /// Read image and video paths given in requests from inside this directory.
    #[arg(long, value_name = "DIR")]
    media_root: Option<PathBuf>,
    /// Fetch http(s) image and video URLs given in requests (public addresses only).
    #[arg(long)]
    allow_remote_media: bool,
    /// With --allow-remote-media, also fetch from loopback and private addresses.
    #[arg(long, requires = "allow_remote_media")]
    allow_private_media: bool,
    /// Most pixels of all the images and sampled video frames of one request.
    #[arg(long, value_name = "PIXELS", default_value_t = sift_serve::Limits::default().max_request_pixels)]
    max_request_pixels: u64,
    /// Connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = sift_serve::ConnectionLimits::default().max_connections)]
    max_connections: usize,
    /// Bytes of request bodies held at once over all requests; a body that does not fit gets 503.
    #[arg(long, default_value_t = sift_serve::ConnectionLimits::default().max_body_bytes_total)]
    max_body_bytes_total: usize,
    /// Seconds to send a request's header; also the most a kept-alive connection stays idle.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = seconds(sift_serve::ConnectionLimits::default().header_timeout))]
    header_timeout: u64,
    /// Seconds to send a request's body; then 408.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = seconds(sift_serve::ConnectionLimits::default().body_timeout))]
    body_timeout: u64,
    /// Seconds from a request's arrival to its answer, queue included; then 504.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = seconds(sift_serve::ConnectionLimits::default().request_timeout))]
    request_timeout: u64,
    /// Seconds the requests in flight get to finish after Ctrl-C or SIGTERM.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..), default_value_t = seconds(sift_serve::ConnectionLimits::default().shutdown_timeout))]
    shutdown_timeout: u64,
    /// An origin whose pages may call the server (CORS), e.g. https://app.example.com, or * for
    /// any; repeat for several.
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
}

fn seconds(duration: std::time::Duration) -> u64 {
    duration.as_secs()
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Rerank(args) => rerank(args),
        Command::Serve(args) => serve(args).map(|()| ExitCode::SUCCESS),
        Command::Quantize(args) => quantize(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let model_dir = model_source::resolve(&args.model)?;
    let limits = sift_serve::Limits {
        max_body_bytes: args.max_body_bytes,
        max_documents: args.max_documents,
        max_text_chars: args.max_text_chars,
        max_image_pixels: args.model_options.max_image_pixels,
        max_video_frames: args.max_video_frames,
        max_media_per_item: args.max_media_per_item,
        max_request_pixels: args.max_request_pixels,
    };
    let options = limits.apply(args.model_options.rerank_options());
    eprintln!("loading {} ...", args.model);
    let reranker = Reranker::load(&model_dir, options).map_err(|e| e.to_string())?;
    eprintln!("model loaded on {}", reranker.device_name());
    let serve_options = sift_serve::ServeOptions {
        model_name: args.served_model_name.unwrap_or(args.model),
        limits,
        media: sift_serve::MediaPolicy {
            allow_remote: args.allow_remote_media,
            allow_private: args.allow_private_media,
            root: args.media_root,
            ..sift_serve::MediaPolicy::default()
        },
        max_queue: args.max_queue,
        api_key: args.api_key,
        connections: sift_serve::ConnectionLimits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout),
            body_timeout: Duration::from_secs(args.body_timeout),
            max_body_bytes_total: args.max_body_bytes_total,
            request_timeout: Duration::from_secs(args.request_timeout),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        },
        cors_origins: args.cors_origin,
    };
    let server = sift_serve::Server::new(reranker, serve_options)?;
    sift_serve::run(std::net::SocketAddr::new(args.host, args.port), server)
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

fn rerank(args: RerankArgs) -> Result<ExitCode, String> {
    let model_dir = model_source::resolve(&args.model)?;
    let options = args.model_options.rerank_options();
    if let Some(input) = &args.batch {
        if !args.inputs.is_empty() {
            return Err("--batch takes no other positional arguments".into());
        }
        let batch = batch::Batch {
            input,
            resume: args.resume.as_deref(),
            top_n: args.top_n,
        };
        return batch::run(&batch, || {
            Reranker::load(&model_dir, options).map_err(|e| e.to_string())
        });
    }
    // Nothing is printed before the scores are all computed: a signal ends the run at once.
    let bar = progress_bar();
    interrupt::on_signal({
        let bar = bar.clone();
        move |signal| {
            bar.finish_and_clear();
            eprintln!(
                "interrupted by {}: stopped before any score was printed",
                signal.name()
            );
            std::process::exit(signal.exit_code().into());
        }
    })?;
    let reranker = Reranker::load(&model_dir, options).map_err(|e| e.to_string())?;
    if let Some(query) = args.query {
        let (request, names) = quick_request(query, args.instruction, &args.inputs)?;
        let scores = score_with_progress(&reranker, &request, &bar);
        print!("{}", output::table(&request, &names, &scores, args.top_n));
        return Ok(ExitCode::SUCCESS);
    }
    let [path] = args.inputs.as_slice() else {
        return Err("give one request file (or `-` for stdin), or use --query or --batch".into());
    };
    let (text, base) = read_request(path)?;
    let request = Request::from_json(&text, &base).map_err(|e| e.to_string())?;
    let scores = score_with_progress(&reranker, &request, &bar);
    println!(
        "{}",
        sift::request_results_json(&request, &scores, args.top_n)
    );
    Ok(ExitCode::SUCCESS)
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

/// The quick form's documents, with the names the table shows: an existing image, video, PDF
/// (a document per page) or text file, or literal text.
fn quick_request(
    query: String,
    instruction: Option<String>,
    docs: &[String],
) -> Result<(Request, Vec<String>), String> {
    if docs.is_empty() {
        return Err("--query needs at least one document after it".into());
    }
    let (mut documents, mut names) = (Vec::new(), Vec::new());
    for doc in docs {
        let path = Path::new(doc);
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let document = if !path.is_file() {
            Content::text(doc.clone())
        } else if IMAGE_EXTENSIONS.contains(&extension.as_str()) {
            Content::image(ImageSource::Path(path.to_path_buf()))
        } else if VIDEO_EXTENSIONS.contains(&extension.as_str()) {
            Content::video(VideoSource::Path(path.to_path_buf()))
        } else if extension == "pdf" {
            #[cfg(feature = "pdf")]
            {
                let options = sift::pdf::PdfOptions::default();
                for page in sift::pdf::PdfPage::pages_of(path, doc, None, &options) {
                    names.push(match page.page {
                        Some(number) => format!("{doc} · page {number}"),
                        None => doc.clone(),
                    });
                    documents.push(Content::image(ImageSource::PdfPage(page)));
                }
                continue;
            }
            #[cfg(not(feature = "pdf"))]
            return Err(format!(
                "{doc}: this build of sift reads no PDFs; rebuild it with the `pdf` feature"
            ));
        } else {
            std::fs::read_to_string(path)
                .map(Content::text)
                .map_err(|e| format!("cannot read {doc} as UTF-8 text: {e}"))?
        };
        documents.push(document);
        names.push(doc.clone());
    }
    let request = Request {
        instruction,
        query: Content::text(query),
        documents,
        ..Request::default()
    };
    Ok((request, names))
}

/// A request's progress on stderr, in documents; its length is set when the request is read.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    let template = "{pos}/{len} documents [{bar:30}] {per_sec}, ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn score_with_progress(
    reranker: &Reranker,
    request: &Request,
    bar: &ProgressBar,
) -> Vec<Result<f32, sift::DocError>> {
    bar.set_length(request.documents.len() as u64);
    let scores = reranker.score_each(request, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    scores
}
