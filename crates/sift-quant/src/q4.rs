//! Symmetric 4-bit quantization with one f16 scale per block of 32 values along a row:
//! `scale = max|x| / 7`, `q = round_half_even(x / scale)` in `-7..=7`, stored as `q + 8`, and
//! `x ≈ (q - 8) · scale`. Every value is within half a step of its original (GGML's Q4_0 uses the
//! 16th level too, but then values of the sign opposite to the extreme clamp, with errors up to a
//! whole step).
//!
//! A row of any length is quantized: its last block is padded with zeros (the 8B's vision MLP
//! has rows of 4304 values), and the padding is stored, so every stored row is whole blocks.
//!
//! Deterministic by construction: plain IEEE f32 division and rounding, no fused operations, no
//! order-dependent sums, so every platform (wasm32 included) writes the same bytes.

use half::f16;

/// Values per scale.
pub const BLOCK: usize = 32;

/// A 2-D tensor in Q4: `rows × cols`, each row stored as [`padded_cols`]`(cols)` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Q4Tensor {
    pub rows: usize,
    pub cols: usize,
    /// `rows × padded_cols(cols) / 2` bytes: value `2i` of a row in the low nibble of its byte
    /// `i`, `2i + 1` in the high.
    pub packed: Vec<u8>,
    /// `rows × padded_cols(cols) / 32` scales.
    pub scales: Vec<f16>,
}

/// Values a row of `cols` takes when stored: whole blocks, the last padded with zeros.
pub fn padded_cols(cols: usize) -> usize {
    cols.next_multiple_of(BLOCK)
}

/// Quantizes a row-major `rows × cols` matrix.
pub fn quantize(values: &[f32], rows: usize, cols: usize) -> Q4Tensor {
    assert_eq!(values.len(), rows * cols, "values do not match the shape");
    let width = padded_cols(cols);
    let mut packed = Vec::with_capacity(rows * width / 2);
    let mut scales = Vec::with_capacity(rows * width / BLOCK);
    let mut padded = vec![0f32; width];
    for row in values.chunks_exact(cols.max(1)).take(rows) {
        padded[..cols].copy_from_slice(row);
        quantize_row(&padded, &mut packed, &mut scales);
    }
    Q4Tensor {
        rows,
        cols,
        packed,
        scales,
    }
}

/// Appends the nibbles and scales of one row, a whole number of blocks.
fn quantize_row(row: &[f32], packed: &mut Vec<u8>, scales: &mut Vec<f16>) {
    for block in row.chunks_exact(BLOCK) {
        let max = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        // The scale is rounded to f16 (up, so that max / scale stays within 7) before the
        // values are quantized against it.
        let mut scale = f16::from_f32(max / 7.0);
        if scale.to_f32() * 7.0 < max {
            scale = f16::from_bits(scale.to_bits() + 1);
        }
        let s = scale.to_f32();
        let q = |x: f32| {
            let level = if s == 0.0 {
                0.0
            } else {
                (x / s).round_ties_even()
            };
            (level.clamp(-7.0, 7.0) + 8.0) as u8
        };
        for pair in block.chunks_exact(2) {
            packed.push(q(pair[0]) | (q(pair[1]) << 4));
        }
        scales.push(scale);
    }
}

impl Q4Tensor {
    /// The f32 values the quantized weights stand for, without the padding.
    pub fn dequantize(&self) -> Vec<f32> {
        let width = padded_cols(self.cols);
        let mut row = Vec::with_capacity(width);
        let mut out = Vec::with_capacity(self.rows * self.cols);
        let blocks = self.packed.chunks_exact(BLOCK / 2).zip(&self.scales);
        for (i, (block, scale)) in blocks.enumerate() {
            let s = scale.to_f32();
            for &byte in block {
                row.push((f32::from(byte & 0x0f) - 8.0) * s);
                row.push((f32::from(byte >> 4) - 8.0) * s);
            }
            if (i + 1) % (width / BLOCK) == 0 {
                out.extend_from_slice(&row[..self.cols]);
                row.clear();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<f32> {
        // xorshift: reproducible without a dependency.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn round_trip_error_is_at_most_half_a_step() {
        let x = noise(64 * 96, 7);
        let q = quantize(&x, 64, 96);
        let y = q.dequantize();
        for (b, (xs, ys)) in x.chunks(BLOCK).zip(y.chunks(BLOCK)).enumerate() {
            let step = q.scales[b].to_f32().abs();
            for (a, b) in xs.iter().zip(ys) {
                assert!(
                    (a - b).abs() <= step * 0.5 + 1e-3 * step,
                    "{a} vs {b}, step {step}"
                );
            }
        }
    }

    #[test]
    fn extremes_and_zeros_are_kept() {
        let mut x = vec![0f32; 32];
        x[5] = -0.875;
        x[6] = 0.875;
        let q = quantize(&x, 1, 32);
        let y = q.dequantize();
        assert_eq!((y[5], y[6]), (-0.875, 0.875));
        assert_eq!(y[0], 0.0);
        let zeros = quantize(&[0.0; 64], 2, 32);
        assert!(zeros.dequantize().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn rows_off_the_block_size_are_padded_with_zeros() {
        let x = noise(3 * 40, 5);
        let q = quantize(&x, 3, 40);
        assert_eq!((q.packed.len(), q.scales.len()), (3 * 32, 3 * 2));
        // The padding quantizes to level 0, stored as 8.
        assert!(q.packed[16 + 4..32].iter().all(|&b| b == 0x88));
        let y = q.dequantize();
        assert_eq!(y.len(), x.len());
        let whole = quantize(&x[..40], 1, 40).dequantize();
        assert_eq!(y[..40], whole[..]);
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= 0.5 / 7.0 * 0.5 * 1.001, "{a} vs {b}");
        }
    }

    #[test]
    fn bytes_are_fixed_for_a_fixed_input() {
        // Any change to the scheme or its rounding changes these bytes.
        let q = quantize(&noise(64, 3), 1, 64);
        assert_eq!(
            (
                q.packed[..8].to_vec(),
                q.scales.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
            ),
            (
                vec![65u8, 154, 179, 130, 166, 54, 135, 37],
                vec![11411u16, 11187]
            )
        );
    }
}
