//! The device a [`Backend`] choice resolves to, and its name for people.

use sift_model::Device;

use crate::error::LoadError;
use crate::options::Backend;

/// The device `backend` names, and its name for people.
pub(crate) fn device_for(backend: Backend) -> Result<(Device, String), LoadError> {
    match backend {
        Backend::Cpu => cpu_device(),
        #[cfg(feature = "wgpu")]
        Backend::Gpu => {
            let device = sift_model::gpu_device()?;
            let name = sift_model::gpu_info(&device)
                .map_or_else(|| "the GPU".to_string(), |info| info.name);
            Ok((device, name))
        }
        #[cfg(not(feature = "wgpu"))]
        Backend::Gpu => Err(LoadError::BackendNotBuilt("wgpu")),
        #[cfg(feature = "wgpu")]
        Backend::Auto if sift_model::hardware_gpu_present() => device_for(Backend::Gpu),
        Backend::Auto => cpu_device(),
    }
}

fn cpu_device() -> Result<(Device, String), LoadError> {
    #[cfg(feature = "flex")]
    return Ok((Device::flex(), "the CPU".to_string()));
    #[cfg(not(feature = "flex"))]
    Err(LoadError::BackendNotBuilt("flex"))
}

/// The GPU's name and API, or "the CPU".
pub(crate) fn device_name(device: &Device) -> String {
    sift_model::gpu_info(device).map_or_else(|| "the CPU".to_string(), |info| info.name)
}
