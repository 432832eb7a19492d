//! Videos whose frames the caller samples and decodes itself (a browser's `<video>` element):
//! the file's container probed for its frame times ([`probe_container`]), the frames to take
//! planned as the reference samples them ([`SamplePlan`]), and the decoded frames collected and
//! resized ([`FrameCollector`]) into the [`VideoFrames`](crate::VideoFrames) of a
//! [`VideoSource::Sampled`](crate::VideoSource::Sampled): scored as the file itself would be.

pub use sift_inputs::video::{
    ContainerInfo, FrameCollector, SamplePlan, check_frame_pixels, check_sample_tokens,
    group_timestamps, probe_container,
};
