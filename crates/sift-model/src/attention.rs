//! Scaled dot-product attention, shared by the vision tower and the text decoder.
//!
//! Two ways to compute it: burn's attention op (a flash kernel on the CPU backend; natively on
//! GPUs whichever kernel its autotune finds fastest among those that launch; in browsers, where
//! burn has no autotune, the formula in separate kernels), and the formula written out here,
//! two tuned matmuls around an f32 softmax. Natively on GPUs, the faster of the two for a class
//! of shapes is measured the first time one comes: on some GPUs none of burn's accelerated
//! kernels launches for the vision tower's shapes (they ask for more shared memory than the GPU
//! has) and its remaining kernel is about 7× slower than the written formula
//! (docs/performance.md).
//!
//! Queries are processed in chunks so that a score matrix, where one is written, never exceeds
//! what the GPU binds: a full `[heads, L, L]` matrix is 3.3 GB in f32 for one 1800-token image
//! (7200 patches, 16 heads). Each row's softmax still spans every key it sees, so chunking
//! changes no result.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use burn::tensor::activation::softmax;
use burn::tensor::module::attention as attention_op;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, DType, Device, Tensor};

use crate::projection::Projection;

/// Bytes of score matrix computed at once in browsers and where the binding limit is unknown:
/// half of WebGPU's default `maxStorageBufferBindingSize`, which keeps one image pair of the
/// 4-bit 2B model within 1.6 GB of GPU memory (docs/quantization.md).
const DEFAULT_SCORE_BYTES: usize = 64 << 20;

/// The most bytes of score matrix computed at once, whatever the GPU binds. Natively: one image
/// of the 2B's vision tower (16 heads, 3072 patches: 604 MB) in one launch per layer.
#[cfg(not(target_family = "wasm"))]
const MAX_SCORE_BYTES: usize = 1 << 30;
/// In browsers: the default, which bounds the page's GPU memory (see above).
#[cfg(target_family = "wasm")]
const MAX_SCORE_BYTES: usize = DEFAULT_SCORE_BYTES;

/// How attention multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttentionPrecision {
    /// f32 throughout. burn's GPU op is given its scale explicitly, which keeps it on its f32
    /// kernels: its flash kernels take no scale and multiply in f16 on GPUs with tensor cores.
    F32,
    /// q, k and v in f16 (f32 accumulation, the output back in f32): the flash kernels,
    /// tensor cores included, are free to run.
    F16,
}

impl AttentionPrecision {
    /// The precision of a layer's attention: that of its projections, so that
    /// [`Projection::compute_in_f16`] switches both, except on GPUs whose kernels are WGSL.
    /// There burn's f16 attention has no tensor-core kernel and runs 5–9× slower than its f32
    /// one (docs/performance.md), so attention stays f32 while the linear layers go f16.
    pub fn of(projection: &Projection) -> Self {
        let on_wgsl_gpu = !cfg!(feature = "vulkan")
            && crate::device::known_gpu(&projection.weight.val().device()).is_some();
        if projection.computes_in_f16() && !on_wgsl_gpu {
            Self::F16
        } else {
            Self::F32
        }
    }
}

/// `softmax(q·kᵀ / √d [+ causal mask]) · v` for `q` of shape `[batch, heads, len, head_dim]`
/// and `k`, `v` of shape `[batch, key_heads, keys, head_dim]` with `keys ≥ len` and
/// `key_heads` dividing `heads` (grouped-query attention: key head `g` serves query heads
/// `g·rep .. (g+1)·rep`). With `causal`, the queries are the last `len` of the keys' positions
/// and query `i` sees keys `0..=keys - len + i`: a whole prompt (`keys == len`), or tokens
/// after a reused prefix.
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: bool,
    precision: AttentionPrecision,
) -> Tensor<4> {
    // On GPUs, sift's flash kernel where chosen (`kernels::use_flash_attention`): whole (it
    // writes no score matrix), in f32, reading each key head for its query heads. Not for f16
    // attention in SPIR-V builds, where burn's op has tensor-core flash kernels (1.6 ms per
    // vision layer where they launch, against 2.3 for sift's in f32 through WGSL;
    // docs/performance.md): that choice stays with the measurement per class of shapes.
    let tensor_cores = cfg!(feature = "vulkan") && precision == AttentionPrecision::F16;
    if !tensor_cores {
        let scale = (q.dims()[3] as f32).powf(-0.5);
        if let Some(out) = crate::kernels::flash_attention(&q, &k, &v, scale, causal) {
            return out.cast(DType::F32);
        }
    }
    let heads = q.dims()[1];
    let [k, v] = [k, v].map(|t| repeat_heads(t, heads));
    let budget = score_budget(&q.device());
    attention_in_chunks(q, k, v, causal, precision, budget, |chunk| {
        Kernel::for_chunk(chunk, causal, precision)
    })
}

/// `[batch, key_heads, keys, head_dim]` with each key head repeated for the query heads it
/// serves: `[batch, heads, keys, head_dim]`.
fn repeat_heads(t: Tensor<4>, heads: usize) -> Tensor<4> {
    let [batch, key_heads, keys, head_dim] = t.dims();
    if key_heads == heads {
        return t;
    }
    t.unsqueeze_dim::<5>(2)
        .expand([batch, key_heads, heads / key_heads, keys, head_dim])
        .reshape([batch, heads, keys, head_dim])
}

/// `count` consecutive segments of `length` rows from `start`, computed as one batch: a video's
/// frame groups, images of one size, documents of one length packed in a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub length: usize,
    pub count: usize,
}

impl Run {
    /// The run's rows of a heads-first `[heads, len, head_dim]` tensor, as a batch
    /// `[count, heads, length, head_dim]`.
    pub fn batch(&self, t: &Tensor<3>) -> Tensor<4> {
        let [heads, _, head_dim] = t.dims();
        t.clone()
            .slice([0..heads, self.start..self.start + self.length * self.count])
            .reshape([heads, self.count, self.length, head_dim])
            .swap_dims(0, 1)
    }

    /// [`batch`](Self::batch) undone: `[heads, count·length, head_dim]`.
    pub fn unbatch(&self, t: Tensor<4>) -> Tensor<3> {
        let [_, heads, _, head_dim] = t.dims();
        t.swap_dims(0, 1)
            .reshape([heads, self.count * self.length, head_dim])
    }
}

/// Consecutive segments of one length, joined into runs.
pub fn equal_length_runs(segments: impl IntoIterator<Item = Range<usize>>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for segment in segments {
        match runs.last_mut() {
            Some(run)
                if run.length == segment.len()
                    && run.start + run.length * run.count == segment.start =>
            {
                run.count += 1
            }
            _ => runs.push(Run {
                start: segment.start,
                length: segment.len(),
                count: 1,
            }),
        }
    }
    runs
}

/// Score-matrix elements computed at once on `device`: half of what it binds (every
/// intermediate of the written-out formula is one such matrix, its softmax in f32), within the
/// caps above.
fn score_budget(device: &Device) -> usize {
    let bytes = crate::device::binding_limit(device).map_or(DEFAULT_SCORE_BYTES, |limit| {
        usize::try_from(limit / 2).map_or(MAX_SCORE_BYTES, |half| half.min(MAX_SCORE_BYTES))
    });
    bytes / size_of::<f32>()
}

/// Attention of `q` in chunks of rows of at most `budget` score elements, each computed by the
/// kernel `pick` chooses for its queries, keys and values.
fn attention_in_chunks(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    causal: bool,
    precision: AttentionPrecision,
    budget: usize,
    pick: impl Fn(&[Tensor<4>; 3]) -> Kernel,
) -> Tensor<4> {
    let [batch, heads, len, head_dim] = q.dims();
    let keys = k.dims()[2];
    let [q, k, v] = [q, k, v].map(|t| match precision {
        AttentionPrecision::F32 => t,
        AttentionPrecision::F16 => t.cast(DType::F16),
    });
    let rows = (budget / (batch * heads * keys).max(1)).clamp(1, len.max(1));
    let chunks: Vec<Tensor<4>> = (0..len)
        .step_by(rows)
        .map(|start| {
            let end = (start + rows).min(len);
            let q = q
                .clone()
                .slice([0..batch, 0..heads, start..end, 0..head_dim]);
            // A causal chunk sees no key after its last query; both kernels align the queries
            // with the last keys they are given.
            let seen = if causal { keys - len + end } else { keys };
            let [k, v] = [&k, &v].map(|t| t.clone().slice([0..batch, 0..heads, 0..seen]));
            let chunk = [q, k, v];
            pick(&chunk).run(chunk, causal, precision)
        })
        .collect();
    Tensor::cat(chunks, 2).cast(DType::F32)
}

/// How one chunk of attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// burn's attention op.
    Op,
    /// `softmax(q·kᵀ/√d)·v` as two matmuls around an f32 softmax.
    Formula,
}

/// What a kernel's speed depends on, in classes as coarse as burn's own autotune keys (powers
/// of two), so that the text decoder's many lengths share a few measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ShapeClass {
    precision: AttentionPrecision,
    causal: bool,
    batches: usize,
    queries: usize,
    keys: usize,
    head_dim: usize,
}

/// Which kernels attention uses: by default the one measured faster per class of shapes;
/// `sift bench --attention` times either alone against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum AttentionKernels {
    /// Natively on GPUs, the faster of the two for each class of shapes, measured on first use;
    /// burn's op elsewhere.
    #[default]
    Measured,
    /// burn's attention op everywhere.
    BurnOp,
    /// The formula written out everywhere.
    Formula,
}

static KERNELS: Mutex<AttentionKernels> = Mutex::new(AttentionKernels::Measured);

/// Sets the attention kernels of this process.
pub fn use_attention_kernels(kernels: AttentionKernels) {
    *KERNELS.lock().unwrap_or_else(|e| e.into_inner()) = kernels;
}

/// What was measured for one class of shapes, and the kernel kept.
#[derive(Debug, Clone, Copy)]
struct Measurement {
    op: Option<Duration>,
    formula: Option<Duration>,
    kept: Kernel,
}

/// The measurements of this process's GPU, per class of shapes.
static MEASURED: Mutex<BTreeMap<ShapeClass, Measurement>> = Mutex::new(BTreeMap::new());

fn measured() -> std::sync::MutexGuard<'static, BTreeMap<ShapeClass, Measurement>> {
    MEASURED.lock().unwrap_or_else(|e| e.into_inner())
}

/// One line per class of attention shapes measured so far, in the order of their classes: both
/// kernels' times and the one kept (`sift bench --profile`).
pub fn attention_measurements() -> Vec<String> {
    let ms = |t: Option<Duration>| {
        t.map_or("failed".into(), |t| {
            format!("{:.2} ms", t.as_secs_f64() * 1e3)
        })
    };
    measured()
        .iter()
        .map(|(class, m)| {
            format!(
                "{:?}{} {} × {} queries × {} keys, head_dim {}: burn's op {}, formula {} → {:?}",
                class.precision,
                if class.causal { " causal" } else { "" },
                class.batches,
                class.queries,
                class.keys,
                class.head_dim,
                ms(m.op),
                ms(m.formula),
                m.kept,
            )
        })
        .collect()
}

impl Kernel {
    /// The kernel for a chunk, as [`AttentionKernels`] says. Measured: burn's op on the CPU
    /// (its flash kernel) and in browsers (which cannot wait for the GPU synchronously); on a
    /// native GPU, the faster of the two for the chunk's class of shapes, timed on this chunk
    /// the first time its class comes.
    fn for_chunk(chunk: &[Tensor<4>; 3], causal: bool, precision: AttentionPrecision) -> Self {
        match *KERNELS.lock().unwrap_or_else(|e| e.into_inner()) {
            AttentionKernels::BurnOp => return Self::Op,
            AttentionKernels::Formula => return Self::Formula,
            AttentionKernels::Measured => {}
        }
        let device = chunk[0].device();
        if cfg!(target_family = "wasm") || crate::device::known_gpu(&device).is_none() {
            return Self::Op;
        }
        let [batch, heads, queries, head_dim] = chunk[0].dims();
        let class = ShapeClass {
            precision,
            causal,
            batches: (batch * heads).next_power_of_two(),
            queries: queries.next_power_of_two(),
            keys: chunk[1].dims()[2].next_power_of_two(),
            head_dim,
        };
        if let Some(m) = measured().get(&class) {
            return m.kept;
        }
        let [op, formula] =
            [Self::Op, Self::Formula].map(|kernel| kernel.time(chunk, causal, precision, &device));
        let kept = Self::faster(op, formula);
        let measurement = Measurement { op, formula, kept };
        measured().insert(class, measurement);
        kept
    }

    /// The kernel to keep, given the time of each (`None`: it failed). burn's op unless the
    /// formula takes at most 2/3 of its time: one timing decides, near ties are noise, and the
    /// op's flash kernels write no score matrix (the formula writes one in f32).
    fn faster(op: Option<Duration>, formula: Option<Duration>) -> Self {
        match (op, formula) {
            (Some(op), Some(formula)) if formula * 3 <= op * 2 => Self::Formula,
            (None, Some(_)) => Self::Formula,
            _ => Self::Op,
        }
    }

    /// How long the kernel takes on `chunk`, after a first run that compiles its kernels (and
    /// lets burn's autotune choose); `None` if the GPU fails to finish.
    fn time(
        self,
        chunk: &[Tensor<4>; 3],
        causal: bool,
        precision: AttentionPrecision,
        device: &Device,
    ) -> Option<Duration> {
        let mut elapsed = None;
        for _ in 0..2 {
            device.sync().ok()?;
            let started = Instant::now();
            let out = self.run(chunk.clone(), causal, precision);
            device.sync().ok()?;
            elapsed = Some(started.elapsed());
            drop(out);
        }
        elapsed
    }

    /// Attention of the chunk's queries, aligned with the last of its keys when `causal`.
    fn run(
        self,
        [q, k, v]: [Tensor<4>; 3],
        causal: bool,
        precision: AttentionPrecision,
    ) -> Tensor<4> {
        let [batch, heads, queries, head_dim] = q.dims();
        let keys = k.dims()[2];
        let scale = (head_dim as f64).powf(-0.5);
        match self {
            Self::Op => {
                let options = AttentionModuleOptions {
                    scale: match precision {
                        AttentionPrecision::F32 => Some(scale),
                        // The op's default scale, 1/√d: the same value.
                        AttentionPrecision::F16 => None,
                    },
                    softcap: None,
                    is_causal: causal,
                };
                attention_op(q, k, v, None, None, options)
            }
            Self::Formula => {
                // Scaling q first keeps f16 scores far from f16's largest value.
                let scores = (q * scale).matmul(k.swap_dims(2, 3)).cast(DType::F32);
                let scores = if causal {
                    let offset = (keys - queries) as i64;
                    let future = Tensor::<2, Bool>::tril_mask([queries, keys], offset, &v.device());
                    let future = future
                        .unsqueeze::<4>()
                        .expand([batch, heads, queries, keys]);
                    scores.mask_fill(future, f32::NEG_INFINITY)
                } else {
                    scores
                };
                softmax(scores, 3).cast(v.dtype()).matmul(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// Queries, keys and values of 2 batches, 3 heads, 37 positions and 8 dimensions.
    fn random_qkv() -> [Tensor<4>; 3] {
        let device = Device::flex();
        std::array::from_fn(|_| {
            Tensor::<4>::random([2, 3, 37, 8], Distribution::Normal(0.0, 1.0), &device)
        })
    }

    /// The formula written out: `softmax(q·kᵀ/√d)·v`, query `i` seeing keys `0..=i` when
    /// `causal`.
    fn formula(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, causal: bool) -> Tensor<4> {
        let len = q.dims()[2];
        let mut scores = q.matmul(k.swap_dims(2, 3)) * (8f64).powf(-0.5);
        if causal {
            let future = Tensor::<2, Bool>::tril_mask([len, len], 0, &scores.device());
            scores = scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY);
        }
        softmax(scores, 3).matmul(v)
    }

    fn max_difference(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    /// Both kernels equal the formula, with and without the causal mask, in one chunk and in
    /// chunks of 5 rows.
    #[test]
    fn chunks_equal_the_formula() {
        let [q, k, v] = random_qkv();
        for kernel in [Kernel::Op, Kernel::Formula] {
            for causal in [false, true] {
                let expected = formula(q.clone(), k.clone(), v.clone(), causal);
                for budget in [usize::MAX, 2 * 3 * 37 * 5] {
                    let (q, k, v) = (q.clone(), k.clone(), v.clone());
                    let got = attention_in_chunks(
                        q,
                        k,
                        v,
                        causal,
                        AttentionPrecision::F32,
                        budget,
                        |_| kernel,
                    );
                    let diff = max_difference(got, expected.clone());
                    assert!(
                        diff < 1e-5,
                        "{kernel:?}, causal={causal}, budget {budget}: {diff}"
                    );
                }
            }
        }
    }

    /// f16 attention stays near f32, by either kernel: within what rounding q, k, v and the
    /// output to f16's 11 significant bits allows (outputs are of order 1).
    #[test]
    fn f16_attention_stays_near_f32() {
        let [q, k, v] = random_qkv();
        for kernel in [Kernel::Op, Kernel::Formula] {
            for causal in [false, true] {
                let exact = formula(q.clone(), k.clone(), v.clone(), causal);
                let (q, k, v) = (q.clone(), k.clone(), v.clone());
                let half = attention_in_chunks(
                    q,
                    k,
                    v,
                    causal,
                    AttentionPrecision::F16,
                    usize::MAX,
                    |_| kernel,
                );
                assert_eq!(half.dtype(), DType::F32);
                let diff = max_difference(exact, half);
                assert!(
                    diff > 0.0 && diff < 5e-3,
                    "{kernel:?}, causal={causal}: {diff}"
                );
            }
        }
    }

    /// A layer computing in f16 attends in f16 on the CPU, and in f32 on a GPU whose kernels
    /// are WGSL (lavapipe, with `.ci/test --native-gpu`).
    #[cfg(all(feature = "wgpu", not(feature = "vulkan")))]
    #[test]
    fn attention_stays_f32_on_a_wgsl_gpu_while_the_layer_goes_f16() {
        let gpu = crate::gpu_device().expect("a GPU through wgpu (lavapipe without one)");
        let precision = |device: &Device| {
            let mut layer = Projection::new(8, 8, false, device);
            layer.compute_in_f16();
            AttentionPrecision::of(&layer)
        };
        assert_eq!(precision(&Device::flex()), AttentionPrecision::F16);
        assert_eq!(precision(&gpu), AttentionPrecision::F32);
    }

    /// The formula is kept only where it is clearly faster (the machines where burn's flash
    /// kernels do not launch: 3.4 against 27 ms), or where the op failed.
    #[test]
    fn the_formula_is_kept_only_where_clearly_faster() {
        let ms = |ms: u64| Some(Duration::from_millis(ms));
        assert_eq!(Kernel::faster(ms(27), ms(3)), Kernel::Formula);
        assert_eq!(Kernel::faster(ms(30), ms(20)), Kernel::Formula);
        assert_eq!(Kernel::faster(ms(30), ms(21)), Kernel::Op);
        assert_eq!(Kernel::faster(ms(5), ms(9)), Kernel::Op);
        assert_eq!(Kernel::faster(None, ms(9)), Kernel::Formula);
        assert_eq!(Kernel::faster(ms(5), None), Kernel::Op);
        assert_eq!(Kernel::faster(None, None), Kernel::Op);
    }

    #[test]
    fn segments_of_one_length_form_runs() {
        // Two 2-frame groups of 8 patches, an image of 6, another image of 6.
        let runs = equal_length_runs([0..8, 8..16, 16..22, 22..28]);
        let run = |start, length, count| Run {
            start,
            length,
            count,
        };
        assert_eq!(runs, [run(0, 8, 2), run(16, 6, 2)]);
        assert_eq!(equal_length_runs([]), []);
        // A batch is undone exactly.
        let [q, _, _] = random_qkv();
        let q = q.slice([0..1, 0..3]).squeeze_dim::<3>(0);
        let run = run(5, 10, 3);
        let batch = run.batch(&q);
        assert_eq!(batch.dims(), [3, 3, 10, 8]);
        let diff: f32 = (run.unbatch(batch) - q.slice([0..3, 5..35]))
            .abs()
            .max()
            .into_scalar();
        assert_eq!(diff, 0.0);
    }

    /// The last rows of causal attention, computed after the keys and values of the rows before
    /// them, equal those rows of the whole computation, by either kernel: what a reused prefix
    /// relies on.
    #[test]
    fn queries_after_a_past_equal_the_rows_of_the_whole() {
        let [q, k, v] = random_qkv();
        let whole = formula(q.clone(), k.clone(), v.clone(), true);
        let past = 30;
        for kernel in [Kernel::Op, Kernel::Formula] {
            let after = attention_in_chunks(
                q.clone().slice([0..2, 0..3, past..37, 0..8]),
                k.clone(),
                v.clone(),
                true,
                AttentionPrecision::F32,
                2 * 3 * 37 * 2,
                |_| kernel,
            );
            let diff = max_difference(whole.clone().slice([0..2, 0..3, past..37, 0..8]), after);
            assert!(diff < 1e-6, "{kernel:?}: max difference {diff}");
        }
    }

    /// On a GPU, attention through whichever kernel was measured faster equals the formula on
    /// the CPU, the first time a class of shapes comes (while both are measured) and after
    /// (lavapipe, with `.ci/test --native-gpu`).
    #[cfg(feature = "wgpu")]
    #[test]
    fn the_kernel_measured_faster_on_a_gpu_equals_the_formula() {
        let gpu = crate::gpu_device().expect("a GPU through wgpu (lavapipe without one)");
        let [q, k, v] = random_qkv();
        for causal in [false, true] {
            let expected = formula(q.clone(), k.clone(), v.clone(), causal);
            for _ in 0..2 {
                let [q, k, v] = [&q, &k, &v].map(|t| Tensor::from_data(t.to_data(), &gpu));
                let got = attention(q, k, v, causal, AttentionPrecision::F32);
                let got = Tensor::from_data(got.into_data(), &Device::flex());
                let diff = max_difference(got, expected.clone());
                assert!(diff < 1e-5, "causal={causal}: {diff}");
            }
        }
    }
}
