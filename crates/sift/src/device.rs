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
        Backend::Auto if probe_quietly(sift_model::hardware_gpu_present) => {
            device_for(Backend::Gpu)
        }
        Backend::Auto => cpu_device(),
    }
}

/// Runs the GPU probe without the Vulkan layer that prints "error: XDG_RUNTIME_DIR is invalid
/// or not set in the environment." twice on a machine without a desktop session (a server, a
/// container): Mesa's implicit device-select layer asks the Wayland compositor for the default
/// GPU, and libwayland prints that where there can be none. sift picks its adapter itself, and
/// without a session the layer has nothing to choose by, so it is turned off for that case
/// only (`NODEVICE_SELECT`, Mesa's switch), and the start-up line alone says which device runs.
#[cfg(feature = "wgpu")]
fn probe_quietly(probe: fn() -> bool) -> bool {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let no_session = std::env::var_os("XDG_RUNTIME_DIR").is_none_or(|dir| dir.is_empty());
        if no_session && std::env::var_os("NODEVICE_SELECT").is_none() {
            // SAFETY: the probe runs while a model loads, before a reranker exists to start the
            // model's or the server's threads; the variable is only added, once, and only read
            // by the Vulkan loader's layer, which runs after this.
            unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
        }
    });
    probe()
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
