//! GPU set-up, and the largest buffer each GPU binds, which loading checks every tensor
//! against before allocating anything.

use burn::tensor::Device;

use crate::error::ModelError;

/// The default GPU through wgpu (Vulkan, Metal or DirectX 12), or why there is none.
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn gpu_device() -> Result<Device, ModelError> {
    gpu_from_setup(Device::wgpu_options().init_with_setup())
}

/// Whether wgpu finds a hardware GPU through Vulkan, Metal or DirectX 12 (not a rasteriser on
/// the CPU such as Mesa lavapipe), looked up without setting one up.
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn hardware_gpu_present() -> bool {
    use burn::tensor::wgpu::wgpu;
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
        .iter()
        .any(|adapter| {
            use wgpu::DeviceType::{DiscreteGpu, IntegratedGpu, VirtualGpu};
            matches!(
                adapter.get_info().device_type,
                DiscreteGpu | IntegratedGpu | VirtualGpu
            )
        })
}

/// The default GPU, set up asynchronously: in a browser (a page or a worker), its WebGPU
/// adapter.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub async fn gpu_device_async() -> Result<Device, ModelError> {
    gpu_from_setup(Device::wgpu_options().init_with_setup_async().await)
}

/// Records the binding limit of a new GPU, or shares the one already set up.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
fn gpu_from_setup(
    setup: Result<(Device, burn::tensor::wgpu::WgpuSetup), burn::tensor::wgpu::WgpuInitError>,
) -> Result<Device, ModelError> {
    use burn::tensor::wgpu::WgpuInitError;
    match setup {
        Ok((device, setup)) => {
            let limits = setup.device.limits();
            let info = setup.adapter.get_info();
            let parts: Vec<&str> = [&info.name, &info.driver, &info.driver_info]
                .into_iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect();
            use burn::tensor::wgpu::wgpu::Backend;
            let api = match info.backend {
                Backend::BrowserWebGpu => "WebGPU",
                Backend::Vulkan => "Vulkan",
                Backend::Metal => "Metal",
                Backend::Dx12 => "DirectX 12",
                Backend::Gl => "OpenGL",
                _ => "no graphics API",
            };
            // Browsers often keep the adapter's name to themselves.
            let name = if parts.is_empty() {
                api.to_string()
            } else {
                format!("{} ({api})", parts.join(", "))
            };
            let gpu = GpuInfo {
                name,
                max_binding: limits
                    .max_storage_buffer_binding_size
                    .min(limits.max_buffer_size),
                f16: device.supports_dtype(burn::tensor::DType::F16),
            };
            let _ = GPU_INFO.set((device.clone(), gpu));
            Ok(device)
        }
        // The runtime is already up in this process (an earlier load): share it.
        Err(WgpuInitError::Registration { .. }) => Ok(Device::wgpu(Default::default())),
        Err(e) => Err(ModelError::Gpu(format!(
            "{e}. Check the GPU driver (Vulkan, Metal or DirectX 12) or the browser's WebGPU \
             support, or use the CPU backend (--device cpu)"
        ))),
    }
}

/// What a GPU set up by [`gpu_device`] or [`gpu_device_async`] offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    /// The adapter's name, driver and API, as far as the platform reports them.
    pub name: String,
    /// The largest buffer it binds, in bytes (`maxStorageBufferBindingSize`, capped by
    /// `maxBufferSize`).
    pub max_binding: u64,
    /// Whether it computes in f16 (WebGPU's `shader-f16`).
    pub f16: bool,
}

/// The GPU [`gpu_device`] or [`gpu_device_async`] set up, and what it offers.
static GPU_INFO: std::sync::OnceLock<(Device, GpuInfo)> = std::sync::OnceLock::new();

/// What `device` offers, where known (GPUs set up by [`gpu_device`] or
/// [`gpu_device_async`]).
pub fn gpu_info(device: &Device) -> Option<GpuInfo> {
    known_gpu(device).cloned()
}

/// What `device` offers, borrowed: the lookup made on every layer's call.
pub(crate) fn known_gpu(device: &Device) -> Option<&'static GpuInfo> {
    GPU_INFO
        .get()
        .filter(|(gpu, _)| gpu == device)
        .map(|(_, info)| info)
}

/// The largest buffer `device` binds, where known.
pub fn binding_limit(device: &Device) -> Option<u64> {
    known_gpu(device).map(|info| info.max_binding)
}

/// Refuses a tensor of `bytes` over the device's binding limit, naming it and what to do:
/// `fix` first, then a GPU or browser with higher limits.
pub(crate) fn check_binding(
    name: &str,
    bytes: u64,
    limit: u64,
    fix: &str,
) -> Result<(), ModelError> {
    if bytes <= limit {
        return Ok(());
    }
    Err(ModelError::Gpu(format!(
        "{name} needs a {} buffer, but this GPU binds at most {} \
         (maxStorageBufferBindingSize). To run it, {fix}; or use a GPU or browser with higher \
         limits, or run on the CPU",
        size(bytes),
        size(limit)
    )))
}

fn size(bytes: u64) -> String {
    match bytes {
        0..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}
