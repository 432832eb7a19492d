//! A video file's container (MP4/MOV, WebM/Matroska) probed for its frame times, rate and
//! size, then sampled and budgeted as the page does before it plays a frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sift_inputs::video::{SamplePlan, VideoSampling, check_sample_tokens, probe_container};

fuzz_target!(|bytes: &[u8]| {
    let Ok(info) = probe_container(std::io::Cursor::new(bytes)) else {
        return;
    };
    let sampling = VideoSampling::default();
    if SamplePlan::new(info.frame_times.len(), info.fps, &sampling).is_ok() {
        let _ = check_sample_tokens(info.height, info.width, sampling.max_frames, 32_768);
    }
});
