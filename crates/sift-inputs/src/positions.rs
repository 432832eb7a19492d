//! Multimodal rotary position ids (T, H, W) for one sequence, as `Qwen3VLModel.get_rope_index`
//! computes them in transformers 4.57.3.
//!
//! Text tokens advance all three axes together. A visual block of `h × w` merged tokens takes
//! `T = offset`, `H = offset + row`, `W = offset + col`, and the text after it resumes at the
//! largest position so far plus one. Every 2-frame group of a video is its own block with T
//! offset 0 (time is carried by the timestamp text the processor writes before each group).

/// The token ids and merge size that decide where visual blocks are.
#[derive(Debug, Clone, Copy)]
pub struct VisionTokenIds {
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub spatial_merge_size: usize,
}

/// Position ids of shape `[3, len]` and the offset the reference keeps for decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionIds {
    pub axes: [Vec<i64>; 3],
    /// `max position + 1 - len`; unused for scoring, kept because the reference reports it.
    pub rope_delta: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PositionError {
    #[error(
        "the prompt has {found} {kind} blocks but {given} {kind} grids were given; \
         each <|vision_start|> must be followed by the pad tokens of one {kind}"
    )]
    GridCountMismatch {
        kind: &'static str,
        found: usize,
        given: usize,
    },
}

/// Position ids for `input_ids`, given the `grid_thw` of each image and each video in prompt order.
pub fn rope_index(
    input_ids: &[u32],
    image_grids: &[[usize; 3]],
    video_grids: &[[usize; 3]],
    ids: &VisionTokenIds,
) -> Result<PositionIds, PositionError> {
    let len = input_ids.len();
    // A video counts as one block per temporal group.
    let video_blocks: Vec<[usize; 3]> = video_grids
        .iter()
        .flat_map(|&[t, h, w]| std::iter::repeat_n([1, h, w], t))
        .collect();
    let followers = input_ids
        .windows(2)
        .filter(|pair| pair[0] == ids.vision_start_token_id)
        .map(|pair| pair[1]);
    let (mut image_blocks, mut video_count) = (0, 0);
    for token in followers {
        image_blocks += usize::from(token == ids.image_token_id);
        video_count += usize::from(token == ids.video_token_id);
    }
    if image_blocks > image_grids.len() {
        return Err(PositionError::GridCountMismatch {
            kind: "image",
            found: image_blocks,
            given: image_grids.len(),
        });
    }
    if video_count > video_blocks.len() {
        return Err(PositionError::GridCountMismatch {
            kind: "video frame-group",
            found: video_count,
            given: video_blocks.len(),
        });
    }

    let mut axes: [Vec<i64>; 3] = std::array::from_fn(|_| Vec::with_capacity(len));
    let mut next = 0i64; // largest position so far + 1
    let push_text = |axes: &mut [Vec<i64>; 3], next: &mut i64, n: usize| {
        for axis in axes.iter_mut() {
            axis.extend(*next..*next + n as i64);
        }
        *next += n as i64;
    };
    let find_from = |token: u32, start: usize| {
        input_ids[start.min(len)..]
            .iter()
            .position(|&t| t == token)
            .map(|p| p + start)
    };
    let (mut image_index, mut video_index) = (0, 0);
    let (mut images_left, mut videos_left) = (image_blocks, video_count);
    let mut start = 0;
    for _ in 0..image_blocks + video_count {
        // The next block is whichever pad token comes first from `start`, as the reference does.
        let next_image = (images_left > 0)
            .then(|| find_from(ids.image_token_id, start))
            .flatten();
        let next_video = (videos_left > 0)
            .then(|| find_from(ids.video_token_id, start))
            .flatten();
        let (end, [_, h, w]) = match (next_image, next_video) {
            (Some(i), v) if v.is_none_or(|v| i < v) => {
                image_index += 1;
                images_left -= 1;
                (i, image_grids[image_index - 1])
            }
            (_, Some(v)) => {
                video_index += 1;
                videos_left -= 1;
                (v, video_blocks[video_index - 1])
            }
            _ => break,
        };
        let (rows, cols) = (h / ids.spatial_merge_size, w / ids.spatial_merge_size);
        push_text(&mut axes, &mut next, end - start);
        let offset = next;
        for row in 0..rows {
            for col in 0..cols {
                axes[0].push(offset);
                axes[1].push(offset + row as i64);
                axes[2].push(offset + col as i64);
            }
        }
        next = offset + rows.max(cols) as i64;
        start = end + rows * cols;
    }
    if start < len {
        push_text(&mut axes, &mut next, len - start);
    }
    let rope_delta = next - len as i64;
    Ok(PositionIds { axes, rope_delta })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: VisionTokenIds = VisionTokenIds {
        image_token_id: 9,
        video_token_id: 8,
        vision_start_token_id: 7,
        spatial_merge_size: 2,
    };

    /// The worked example of the spec (§3.6): 14 text tokens, then a 2×3 block.
    #[test]
    fn image_block_positions_match_the_worked_example() {
        let mut ids = vec![1; 13];
        ids.push(7);
        ids.extend([9; 6]);
        ids.extend([1; 3]);
        let p = rope_index(&ids, &[[1, 4, 6]], &[], &IDS).unwrap();
        assert_eq!(p.axes[0][14..20], [14; 6]);
        assert_eq!(p.axes[1][14..20], [14, 14, 14, 15, 15, 15]);
        assert_eq!(p.axes[2][14..20], [14, 15, 16, 14, 15, 16]);
        assert_eq!(p.axes[0][20..], [17, 18, 19]);
        assert_eq!(p.rope_delta, 20 - 23);
    }

    #[test]
    fn text_only_counts_up() {
        let p = rope_index(&[1, 2, 3], &[], &[], &IDS).unwrap();
        assert_eq!(p.axes, [vec![0, 1, 2], vec![0, 1, 2], vec![0, 1, 2]]);
        assert_eq!(p.rope_delta, 0);
    }

    #[test]
    fn a_missing_grid_is_an_error() {
        let err = rope_index(&[7, 9, 1], &[], &[], &IDS).unwrap_err();
        assert_eq!(
            err,
            PositionError::GridCountMismatch {
                kind: "image",
                found: 1,
                given: 0
            }
        );
    }
}
