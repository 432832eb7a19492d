//! Rotary position tables, computed on the host in f32 the way transformers 4.57.3 computes them,
//! then uploaded once per forward pass.

use burn::tensor::{Device, Tensor, TensorData};

/// `cos` and `sin` tables of shape `[positions, head_dim]` (the frequencies written twice, as
/// `cat(freqs, freqs)`), applied with [`apply_rotary`].
pub struct RotaryTables {
    pub cos: Tensor<2>,
    pub sin: Tensor<2>,
}

/// `1 / theta^(2j / dim)` for j < dim/2, in f32 like `torch.arange(0, dim, 2).float() / dim`.
fn inverse_frequencies(theta: f32, dim: usize) -> Vec<f32> {
    (0..dim)
        .step_by(2)
        .map(|j| 1.0 / theta.powf(j as f32 / dim as f32))
        .collect()
}

fn tables_from_angles(angles: Vec<f32>, rows: usize, half: usize, device: &Device) -> RotaryTables {
    let mut cos = Vec::with_capacity(rows * half * 2);
    let mut sin = Vec::with_capacity(rows * half * 2);
    for row in angles.chunks(half) {
        for _ in 0..2 {
            cos.extend(row.iter().map(|a| a.cos()));
            sin.extend(row.iter().map(|a| a.sin()));
        }
    }
    let shape = [rows, half * 2];
    RotaryTables {
        cos: Tensor::from_data(TensorData::new(cos, shape), device),
        sin: Tensor::from_data(TensorData::new(sin, shape), device),
    }
}

/// Interleaved MRoPE for the text decoder (`Qwen3VLTextRotaryEmbedding`): frequency slot j takes
/// the H position when `j % 3 == 1` and the W position when `j % 3 == 2`, within the first
/// `3 * section` slots of each axis; every other slot takes the T position.
pub fn text_mrope(
    position_ids: &[Vec<i64>; 3],
    head_dim: usize,
    theta: f64,
    mrope_section: &[usize],
    device: &Device,
) -> RotaryTables {
    let inv_freq = inverse_frequencies(theta as f32, head_dim);
    let half = inv_freq.len();
    let axis_of_slot: Vec<usize> = (0..half)
        .map(|j| match j % 3 {
            1 if j < mrope_section[1] * 3 => 1,
            2 if j < mrope_section[2] * 3 => 2,
            _ => 0,
        })
        .collect();
    let [t, h, w] = position_ids;
    let len = t.len();
    let mut angles = Vec::with_capacity(len * half);
    for ((&t, &h), &w) in t.iter().zip(h).zip(w) {
        let position = [t, h, w];
        angles.extend(
            inv_freq
                .iter()
                .zip(&axis_of_slot)
                .map(|(f, &axis)| position[axis] as f32 * f),
        );
    }
    tables_from_angles(angles, len, half, device)
}

/// The vision tower's 2-D rotary table (`Qwen3VLVisionModel.rot_pos_emb`): each patch's row and
/// column frequencies side by side, for patches given as `(row, col)` in processor order.
pub fn vision_2d(coords: &[(usize, usize)], head_dim: usize, device: &Device) -> RotaryTables {
    let inv_freq = inverse_frequencies(10000.0, head_dim / 2);
    let quarter = inv_freq.len();
    let mut angles = Vec::with_capacity(coords.len() * quarter * 2);
    for &(row, col) in coords {
        angles.extend(inv_freq.iter().map(|f| row as f32 * f));
        angles.extend(inv_freq.iter().map(|f| col as f32 * f));
    }
    tables_from_angles(angles, coords.len(), quarter * 2, device)
}

/// `x * cos + rotate_half(x) * sin` for `x` of shape `[heads, positions, head_dim]`, where
/// `rotate_half(x) = cat(-x[.., half..], x[.., ..half])`.
pub fn apply_rotary(x: Tensor<3>, tables: &RotaryTables) -> Tensor<3> {
    let [heads, len, dim] = x.dims();
    let half = dim / 2;
    let first = x.clone().slice([0..heads, 0..len, 0..half]);
    let second = x.clone().slice([0..heads, 0..len, half..dim]);
    let rotated = Tensor::cat(vec![second.neg(), first], 2);
    x * tables.cos.clone().unsqueeze::<3>() + rotated * tables.sin.clone().unsqueeze::<3>()
}
