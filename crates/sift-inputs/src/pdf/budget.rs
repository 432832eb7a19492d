//! What a page can make the renderer decode, measured before it is drawn. hayro decodes every
//! stream whole and trusts declared image sizes, so a few kilobytes of chained Flate can ask it
//! for gigabytes. This walks everything a page reaches (its content, its resources recursively:
//! forms, images and their masks, patterns, shadings, functions, fonts and Type 3 glyphs,
//! graphics states and their soft masks, annotations' appearances), each object once, and
//! inflates each stream in a small scratch buffer, counting bytes and stopping at the page's
//! limit; images, inline ones included, are checked by their declared size.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read};

use hayro::hayro_syntax::content::TypedIter;
use hayro::hayro_syntax::content::ops::{InlineImage, TypedInstruction};
use hayro::hayro_syntax::object::{Array, Dict, MaybeRef, Name, ObjRef, Object, Stream};
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::xref::XRef;

use super::PdfError;

/// Most objects (dictionaries, arrays, streams, references and the values in them) the walk of
/// one page visits: a page that reaches more is refused, so a hostile object graph cannot make
/// the walk itself slow. Real pages reach a few thousand (a CJK font's width array is the
/// largest part, tens of thousands of numbers).
pub const MAX_PAGE_OBJECTS: u64 = 1_000_000;

/// Keys the walk does not follow: links up the page tree (to every other page's resources),
/// from an annotation to its page or to other annotations, and what the renderer never reads.
const NOT_FOLLOWED: [&[u8]; 9] = [
    b"Parent",
    b"P",
    b"Popup",
    b"IRT",
    b"Dest",
    b"A",
    b"AA",
    b"Metadata",
    b"Thumb",
];

/// The most a filter can expand one input byte to, for a stream that the streaming decoders
/// here refuse (hayro's own decoders are more lenient and may still make something of it):
/// Flate emits at most 258 bytes per 2 bits, LZW at most one 4,096-entry string per 9-bit code,
/// RunLength 128 bytes per 2, ASCII85's `z` 4 bytes per 1.
fn worst_ratio(filter: Filter) -> u64 {
    match filter {
        Filter::Flate => 1032,
        Filter::Lzw { .. } => 3641,
        Filter::RunLength => 64,
        Filter::Ascii85 => 4,
        Filter::AsciiHex => 1,
    }
}

/// The filters whose output depends on the data alone (image codecs are bounded by the image's
/// declared size instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    Flate,
    /// With `/EarlyChange` (the default) or without.
    Lzw {
        early: bool,
    },
    RunLength,
    Ascii85,
    AsciiHex,
}

/// One step of a stream's filter chain, as hayro reads it.
enum Step {
    Data(Filter),
    /// DCT, JPX, JBIG2, CCITT: decoded to the image's declared size.
    ImageCodec,
    /// `/Crypt` past the first place, which hayro cannot apply: the stream decodes to nothing.
    Unusable,
}

fn step(name: &[u8]) -> Option<Step> {
    Some(match name {
        b"FlateDecode" | b"Fl" => Step::Data(Filter::Flate),
        b"LZWDecode" | b"LZW" => Step::Data(Filter::Lzw { early: true }),
        b"RunLengthDecode" | b"RL" => Step::Data(Filter::RunLength),
        b"ASCII85Decode" | b"A85" => Step::Data(Filter::Ascii85),
        b"ASCIIHexDecode" | b"AHx" => Step::Data(Filter::AsciiHex),
        b"DCTDecode" | b"DCT" | b"JPXDecode" | b"JBIG2Decode" | b"CCITTFaxDecode" | b"CCF" => {
            Step::ImageCodec
        }
        b"Crypt" => Step::Unusable,
        // hayro skips a filter it does not know.
        _ => return None,
    })
}

/// The filter chain with each step's parameters, read as hayro-syntax reads it (`/F` before
/// `/Filter`, `/DP` before `/DecodeParms`, a leading `/Crypt` already applied by `raw_data`).
fn chain<'a>(dict: &Dict<'a>) -> Vec<(Step, Dict<'a>)> {
    let name = |key: &[u8]| dict.get::<Name<'_>>(key);
    let array = |key: &[u8]| dict.get::<Array<'a>>(key);
    let mut steps = Vec::new();
    if let Some(filter) = name(b"F").or_else(|| name(b"Filter")) {
        let params = dict
            .get::<Dict<'a>>(b"DP")
            .or_else(|| dict.get::<Dict<'a>>(b"DecodeParms"))
            .unwrap_or_default();
        steps.extend(step(&filter).map(|s| (s, params)));
    } else if let Some(filters) = array(b"F").or_else(|| array(b"Filter")) {
        let mut params = array(b"DP")
            .or_else(|| array(b"DecodeParms"))
            .map(|a| a.iter::<Object<'a>>());
        for filter in filters.iter::<Name<'_>>() {
            let params = params
                .as_mut()
                .and_then(|p| p.next())
                .and_then(Object::into_dict)
                .unwrap_or_default();
            steps.extend(step(&filter).map(|s| (s, params)));
        }
    }
    if matches!(steps.first(), Some((Step::Unusable, _))) {
        steps.remove(0);
    }
    steps
}

/// The bytes one row takes before a predictor is applied: hayro allocates a row of this size
/// whatever the data's length, so `/Columns 10000000000` alone would ask for 10 GB.
fn predictor_row(params: &Dict<'_>) -> u128 {
    if params.get::<u8>(b"Predictor").unwrap_or(1) <= 1 {
        return 0;
    }
    let colors = u128::from(params.get::<u8>(b"Colors").unwrap_or(1));
    let bpc = u128::from(params.get::<u8>(b"BitsPerComponent").unwrap_or(8));
    // As hayro reads them (a value out of range falls back to the default).
    let columns = params.get::<usize>(b"Columns").unwrap_or(1) as u128;
    (columns * colors * bpc).div_ceil(8)
}

/// A stream's decoded size, or that it passed `limit`.
enum Measured {
    Bytes(u64),
    Over,
}

/// Decodes `data` through `filters` (each with the row its predictor allocates) in a scratch
/// buffer, counting the last filter's bytes and stopping past `limit`. A stream the decoders
/// here refuse (damaged data, which hayro's more lenient decoders may still expand) counts as
/// the most its filters could make of it.
fn measure(data: &[u8], filters: &[(Filter, u128)], limit: u64) -> Measured {
    let over = |bytes: u128| match u64::try_from(bytes) {
        Ok(bytes) if bytes <= limit => Measured::Bytes(bytes),
        _ => Measured::Over,
    };
    if filters.iter().any(|&(_, row)| row > u128::from(limit)) {
        return Measured::Over;
    }
    let worst = filters
        .iter()
        .fold(data.len() as u128, |bytes, &(filter, _)| {
            bytes.saturating_mul(u128::from(worst_ratio(filter))) + 512
        });
    let mut reader: Box<dyn BufRead + '_> = Box::new(data);
    for &(filter, _) in filters {
        reader = match decoder(filter, reader) {
            Ok(decoded) => Box::new(BufReader::with_capacity(8 << 10, decoded)),
            Err(_) => return over(worst),
        };
    }
    let mut scratch = vec![0; 32 << 10];
    let mut total = 0u64;
    loop {
        match reader.read(&mut scratch) {
            Ok(0) => return Measured::Bytes(total),
            Ok(n) => {
                total += n as u64;
                if total > limit {
                    return Measured::Over;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return over(worst),
        }
    }
}

fn decoder<'a>(filter: Filter, mut input: Box<dyn BufRead + 'a>) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match filter {
        Filter::Flate => {
            // hayro tries zlib first, then a bare deflate stream.
            let head = input.fill_buf()?;
            let zlib = head.len() >= 2
                && head[0] & 0x0f == 8
                && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            if zlib {
                Box::new(flate2::bufread::ZlibDecoder::new(input))
            } else {
                Box::new(flate2::bufread::DeflateDecoder::new(input))
            }
        }
        Filter::Lzw { early } => Box::new(Lzw {
            input,
            // PDF's /EarlyChange 1 (the default) is TIFF's early size switch.
            decoder: match early {
                true => weezl::decode::Decoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8),
                false => weezl::decode::Decoder::new(weezl::BitOrder::Msb, 8),
            },
            done: false,
        }),
        Filter::RunLength => Box::new(Bytewise::new(input, RunLength::Length)),
        Filter::Ascii85 => Box::new(Bytewise::new(input, Ascii85::default())),
        Filter::AsciiHex => Box::new(Bytewise::new(input, AsciiHex::default())),
    })
}

struct Lzw<'a> {
    input: Box<dyn BufRead + 'a>,
    decoder: weezl::decode::Decoder,
    done: bool,
}

impl Read for Lzw<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.done && !buf.is_empty() {
            let input = self.input.fill_buf()?;
            let at_end = input.is_empty();
            let result = self.decoder.decode_bytes(input, buf);
            self.input.consume(result.consumed_in);
            match result.status {
                Ok(weezl::LzwStatus::Done) => self.done = true,
                Ok(weezl::LzwStatus::NoProgress) if at_end => self.done = true,
                Ok(_) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            if result.consumed_out > 0 {
                return Ok(result.consumed_out);
            }
        }
        Ok(0)
    }
}

/// A filter decoded one input byte at a time.
trait ByteDecoder {
    /// Decodes `byte` into `out`; `Ok(true)` at the end-of-data marker.
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<bool>;
    /// The input ended without a marker.
    fn finish(&mut self, out: &mut Vec<u8>);
}

struct Bytewise<'a, D> {
    input: Box<dyn BufRead + 'a>,
    decoder: D,
    pending: Vec<u8>,
    at: usize,
    done: bool,
}

impl<'a, D: ByteDecoder> Bytewise<'a, D> {
    fn new(input: Box<dyn BufRead + 'a>, decoder: D) -> Self {
        Bytewise {
            input,
            decoder,
            pending: Vec::new(),
            at: 0,
            done: false,
        }
    }
}

impl<D: ByteDecoder> Read for Bytewise<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.pending.len() && !self.done {
            self.pending.clear();
            self.at = 0;
            let input = self.input.fill_buf()?;
            if input.is_empty() {
                self.decoder.finish(&mut self.pending);
                self.done = true;
                break;
            }
            let mut used = 0;
            for &byte in input {
                used += 1;
                if self.decoder.push(byte, &mut self.pending)? {
                    self.done = true;
                    break;
                }
                if self.pending.len() >= 4096 {
                    break;
                }
            }
            self.input.consume(used);
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

enum RunLength {
    Length,
    Literal(u8),
    Repeat(usize),
}

impl ByteDecoder for RunLength {
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<bool> {
        *self = match *self {
            RunLength::Length if byte == 128 => return Ok(true),
            RunLength::Length if byte < 128 => RunLength::Literal(byte + 1),
            RunLength::Length => RunLength::Repeat(257 - usize::from(byte)),
            RunLength::Literal(left) => {
                out.push(byte);
                match left {
                    1 => RunLength::Length,
                    left => RunLength::Literal(left - 1),
                }
            }
            RunLength::Repeat(count) => {
                out.resize(out.len() + count, byte);
                RunLength::Length
            }
        };
        Ok(false)
    }

    fn finish(&mut self, _: &mut Vec<u8>) {}
}

#[derive(Default)]
struct AsciiHex {
    high: Option<u8>,
}

impl ByteDecoder for AsciiHex {
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<bool> {
        let digit = match byte {
            b'>' => {
                self.finish(out);
                return Ok(true);
            }
            b if b.is_ascii_whitespace() || b == 0 => return Ok(false),
            b => (b as char)
                .to_digit(16)
                .ok_or_else(|| invalid("not a hex digit"))? as u8,
        };
        match self.high.take() {
            Some(high) => out.push(high << 4 | digit),
            None => self.high = Some(digit),
        }
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if let Some(high) = self.high.take() {
            out.push(high << 4);
        }
    }
}

#[derive(Default)]
struct Ascii85 {
    group: u32,
    digits: u8,
}

impl ByteDecoder for Ascii85 {
    fn push(&mut self, byte: u8, out: &mut Vec<u8>) -> io::Result<bool> {
        match byte {
            b'~' => {
                self.finish(out);
                return Ok(true);
            }
            b'z' if self.digits == 0 => out.extend([0; 4]),
            b'!'..=b'u' => {
                self.group = self
                    .group
                    .wrapping_mul(85)
                    .wrapping_add(u32::from(byte - b'!'));
                self.digits += 1;
                if self.digits == 5 {
                    out.extend(self.group.to_be_bytes());
                    (self.group, self.digits) = (0, 0);
                }
            }
            b if b.is_ascii_whitespace() || b == 0 => {}
            _ => return Err(invalid("not an ASCII85 digit")),
        }
        Ok(false)
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.digits > 1 {
            let mut group = self.group;
            for _ in self.digits..5 {
                group = group.wrapping_mul(85).wrapping_add(84);
            }
            out.extend(&group.to_be_bytes()[..usize::from(self.digits) - 1]);
        }
        self.digits = 0;
    }
}

/// Limits for one page's walk.
pub(super) struct Limits {
    /// The page, 1-based, for errors.
    pub page: u32,
    /// Most bytes the page's streams may decode to, in all.
    pub decoded_bytes: u64,
    /// Most pixels one image may declare.
    pub image_pixels: u64,
}

struct Walk<'a> {
    xref: &'a XRef,
    limits: &'a Limits,
    seen: HashSet<ObjRef>,
    objects: u64,
    decoded: u64,
    /// Objects still to visit, each with whether a stream there is a content stream.
    todo: Vec<(MaybeRef<Object<'a>>, bool)>,
}

/// Refuses `page` if what it can make the renderer decode is over `limits`: its streams
/// decoding to more bytes in all, an image declaring more pixels, or more objects reached than
/// [`MAX_PAGE_OBJECTS`]. The page's own content is decoded only once it is known to fit.
pub(super) fn check_page(page: &Page<'_>, limits: &Limits) -> Result<(), PdfError> {
    let mut walk = Walk {
        xref: page.xref(),
        limits,
        seen: HashSet::new(),
        objects: 0,
        decoded: 0,
        todo: Vec::new(),
    };
    // The page's content streams are measured first, then scanned as hayro joins them (an
    // inline image may span two of them).
    let contents = page.raw().get_raw::<Object<'_>>(b"Contents");
    let mut streams = Vec::new();
    match contents.and_then(|c| walk.resolve(c)) {
        Some(Object::Stream(stream)) => streams.push(stream),
        Some(Object::Array(array)) => {
            for item in array.raw_iter() {
                walk.count()?;
                if let Some(Object::Stream(stream)) = walk.resolve(item) {
                    streams.push(stream);
                }
            }
        }
        _ => {}
    }
    for stream in &streams {
        walk.stream(stream, false)?;
    }
    if !streams.is_empty()
        && let Some(content) = page.page_stream()
    {
        walk.scan(content)?;
    }
    let resources = page.resources();
    for dict in [
        &resources.ext_g_states,
        &resources.fonts,
        &resources.properties,
        &resources.color_spaces,
        &resources.x_objects,
        &resources.patterns,
        &resources.shadings,
    ] {
        walk.push(MaybeRef::NotRef(Object::Dict(dict.clone())), false)?;
    }
    // A transparency group's colour space may be an ICC profile, a stream.
    if let Some(group) = page.raw().get_raw::<Object<'_>>(b"Group") {
        walk.push(group, false)?;
    }
    if let Some(annotations) = page.raw().get::<Array<'_>>(b"Annots") {
        for annotation in annotations.iter::<Dict<'_>>() {
            walk.count()?;
            if let Some(appearance) = annotation.get_raw::<Object<'_>>(b"AP") {
                walk.push(appearance, true)?;
            }
        }
    }
    walk.run()
}

impl<'a> Walk<'a> {
    /// Queues an object to visit (counted now, so the queue is bounded too).
    fn push(&mut self, object: MaybeRef<Object<'a>>, content: bool) -> Result<(), PdfError> {
        self.count()?;
        self.todo.push((object, content));
        Ok(())
    }

    fn count(&mut self) -> Result<(), PdfError> {
        self.objects += 1;
        if self.objects > MAX_PAGE_OBJECTS {
            return Err(PdfError::PageTooComplex {
                page: self.limits.page,
                limit: MAX_PAGE_OBJECTS,
            });
        }
        Ok(())
    }

    /// The object itself, or the one a reference names if it was not visited yet.
    fn resolve(&mut self, object: MaybeRef<Object<'a>>) -> Option<Object<'a>> {
        match object {
            MaybeRef::NotRef(object) => Some(object),
            MaybeRef::Ref(r) => {
                if !self.seen.insert(r) {
                    return None;
                }
                self.xref.get::<Object<'a>>(r.into())
            }
        }
    }

    fn run(&mut self) -> Result<(), PdfError> {
        while let Some((object, content)) = self.todo.pop() {
            match self.resolve(object) {
                Some(Object::Dict(dict)) => self.dict(&dict, content)?,
                Some(Object::Array(array)) => {
                    for item in array.raw_iter() {
                        self.push(item, false)?;
                    }
                }
                Some(Object::Stream(stream)) => {
                    self.stream(&stream, content)?;
                    self.dict(stream.dict(), false)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Queues a dictionary's values. Those of `/CharProcs` (Type 3 glyphs) and of `/AP`
    /// (annotation appearances, by state) are content streams.
    fn dict(&mut self, dict: &Dict<'a>, content: bool) -> Result<(), PdfError> {
        for (key, value) in dict.entries() {
            if NOT_FOLLOWED.contains(&&*key) {
                continue;
            }
            let content = content || matches!(&*key, b"CharProcs" | b"AP");
            self.push(value, content)?;
        }
        Ok(())
    }

    /// Checks `stream`'s declared size if it is an image, counts what it decodes to against the
    /// page's limit, and scans it for inline images if it is content.
    fn stream(&mut self, stream: &Stream<'a>, content: bool) -> Result<(), PdfError> {
        let dict = stream.dict();
        let is = |key: &[u8], value: &[u8]| dict.get::<Name<'_>>(key).is_some_and(|n| &*n == value);
        let image = is(b"Subtype", b"Image");
        if image {
            self.image(dict)?;
        }
        // An external file (`/F` a file specification) is not read by hayro.
        if !matches!(
            dict.get::<Object<'_>>(b"F"),
            Some(Object::String(_) | Object::Dict(_))
        ) {
            self.decoded_size(stream)?;
        }
        let content =
            content || is(b"Subtype", b"Form") || dict.get::<u8>(b"PatternType") == Some(1);
        if content
            && !image
            && let Ok(data) = stream.decoded_data()
        {
            self.scan(&data)?;
        }
        Ok(())
    }

    /// Counts what `stream`'s filters decode it to against the page's limit.
    fn decoded_size(&mut self, stream: &Stream<'_>) -> Result<(), PdfError> {
        let mut filters = Vec::new();
        for (step, params) in chain(stream.dict()) {
            match step {
                Step::Data(Filter::Lzw { .. }) => filters.push((
                    Filter::Lzw {
                        early: params.get::<u8>(b"EarlyChange").is_none_or(|e| e != 0),
                    },
                    predictor_row(&params),
                )),
                Step::Data(filter) => filters.push((filter, predictor_row(&params))),
                // What an image codec decodes to is bounded by the declared size, checked
                // separately; filters after it are not used by real files.
                Step::ImageCodec => break,
                Step::Unusable => return Ok(()),
            }
        }
        let left = self.limits.decoded_bytes - self.decoded;
        match measure(&stream.raw_data(), &filters, left) {
            Measured::Bytes(bytes) => {
                self.decoded += bytes;
                Ok(())
            }
            Measured::Over => Err(PdfError::PageDecodesTooLarge {
                page: self.limits.page,
                limit: self.limits.decoded_bytes,
            }),
        }
    }

    /// Refuses an image whose declared width × height is over the limit, before hayro, which
    /// pads a short image out to its declared size, decodes it.
    fn image(&self, dict: &Dict<'_>) -> Result<(), PdfError> {
        let side = |long: &[u8], short: &[u8]| {
            dict.get::<f64>(long)
                .or_else(|| dict.get::<f64>(short))
                .unwrap_or(0.0)
                .max(0.0)
        };
        let (width, height) = (side(b"Width", b"W"), side(b"Height", b"H"));
        let limit = self.limits.image_pixels;
        if width * height > limit as f64 {
            return Err(PdfError::PageImageTooLarge {
                page: self.limits.page,
                width: width as u64,
                height: height as u64,
                limit,
            });
        }
        Ok(())
    }

    /// Checks the inline images of decoded content: each one's declared size, and what its
    /// filters decode it to.
    fn scan(&mut self, content: &[u8]) -> Result<(), PdfError> {
        // A lending iterator (each instruction borrows the iterator), so not a `for` loop.
        let mut operations = TypedIter::new(content);
        while let Some(operation) = operations.next() {
            if let TypedInstruction::InlineImage(InlineImage(stream)) = operation {
                self.count()?;
                self.image(stream.dict())?;
                self.decoded_size(stream)?;
            }
        }
        Ok(())
    }
}
