//! Adapter selection and device creation.
//!
//! The adapter is chosen by name (case-insensitive substring) or index among the
//! enumerated adapters, from an argument or the `VWN_GPU_ADAPTER` environment variable;
//! without a choice the most capable kind wins (discrete, integrated, virtual, CPU).

use std::fmt;

/// Environment variable naming the adapter when no explicit choice is given.
pub const ADAPTER_ENV: &str = "VWN_GPU_ADAPTER";

/// Why no device could be opened.
#[derive(Debug)]
pub enum GpuError {
    /// No adapter at all: no Vulkan/Metal/DX12 driver is installed.
    NoAdapter,
    /// The requested adapter matched nothing; lists what exists.
    NoMatch { wanted: String, available: Vec<String> },
    /// The adapter refused to open a device.
    Device(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter => write!(
                f,
                "no GPU adapter found (no Vulkan, Metal or DX12 driver); without a GPU install Mesa's \
                 software Vulkan driver: apt-get install -y mesa-vulkan-drivers libvulkan1"
            ),
            GpuError::NoMatch { wanted, available } => {
                write!(f, "no GPU adapter matches {wanted:?}; available: ")?;
                for (i, a) in available.iter().enumerate() {
                    write!(f, "{}[{i}] {a}", if i > 0 { ", " } else { "" })?;
                }
                Ok(())
            }
            GpuError::Device(e) => write!(f, "could not open the GPU device: {e}"),
        }
    }
}

impl std::error::Error for GpuError {}

/// One line describing an adapter: name, backend and kind.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

/// Every adapter the system offers, described, in index order.
pub fn list_adapters() -> Vec<String> {
    adapters(&instance()).iter().map(|a| describe(&a.get_info())).collect()
}

fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Picks an adapter: `choice` (or the environment variable) as an index or a name
/// substring, else the most capable kind.
fn select(choice: Option<&str>) -> Result<wgpu::Adapter, GpuError> {
    let mut all = adapters(&instance());
    if all.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let env = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
    let Some(wanted) = choice.map(str::to_string).or(env) else {
        all.sort_by_key(|a| preference(a.get_info().device_type));
        return Ok(all.swap_remove(0));
    };
    let found = match wanted.parse::<usize>() {
        Ok(i) if i < all.len() => Some(i),
        _ => {
            let w = wanted.to_lowercase();
            all.iter().position(|a| a.get_info().name.to_lowercase().contains(&w))
        }
    };
    match found {
        Some(i) => Ok(all.swap_remove(i)),
        None => Err(GpuError::NoMatch { wanted, available: all.iter().map(|a| describe(&a.get_info())).collect() }),
    }
}

/// An open device with what the kernels need to know about it.
pub(crate) struct Device {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl Device {
    pub fn open(choice: Option<&str>) -> Result<Self, GpuError> {
        let adapter = select(choice)?;
        let info = adapter.get_info();
        // Ask for everything the adapter allows: larger storage bindings and more storage
        // buffers per stage than the portable defaults.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("vwn"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(e.to_string()))?;
        Ok(Device { device, queue, info, limits })
    }
}
