//! The command stream: a pending encoder that kernels are recorded into, per-dispatch
//! parameters in one uniform arena, pipelines compiled once and cached, and the only
//! synchronisation point, read-back.
//!
//! Nothing is submitted until the host needs data (`read`) or the parameter arena fills,
//! so a whole training step is usually one command buffer in one compute pass.

use crate::device::{Device, GpuError};
use crate::pool::{bucket, Pool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Bytes of parameters per dispatch (the shaders' `array<vec4<u32>, 16>`).
pub(crate) const PARAM_WORDS: usize = 64;
const PARAM_BYTES: u64 = (PARAM_WORDS * 4) as u64;
/// Dispatches recorded before a forced submit (the arena's capacity).
const ARENA_SLOTS: u64 = 4096;

/// A WGSL module: its name (the cache key) and its source files, appended in order to
/// the common helpers.
pub(crate) struct Shader {
    pub name: &'static str,
    pub sources: &'static [&'static str],
}

/// Helpers every shader starts with (parameters, indexing, the dispatch grid).
const COMMON: &str = include_str!("shaders/common.wgsl");

type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

struct Stream {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    /// Parameters of the recorded dispatches, `slot` bytes apart.
    params: Vec<u8>,
    params_buf: wgpu::Buffer,
    slot: u64,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<PipelineKey, (wgpu::ComputePipeline, wgpu::BindGroupLayout)>,
}

/// The device, its command stream and its buffer pool.
pub(crate) struct Runtime {
    pub dev: Device,
    stream: Mutex<Stream>,
    pool: Mutex<Pool>,
}

/// A device buffer holding `len` elements of 4 bytes; returns to the pool when dropped.
pub struct GpuStorage {
    buffer: Option<wgpu::Buffer>,
    len: usize,
    rt: Arc<Runtime>,
}

impl std::fmt::Debug for GpuStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuStorage({} elements)", self.len)
    }
}

impl GpuStorage {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for GpuStorage {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.rt.lock_pool().release(b.size(), b);
        }
    }
}

impl Runtime {
    pub fn new(choice: Option<&str>) -> Result<Arc<Self>, GpuError> {
        let dev = Device::open(choice)?;
        let slot = PARAM_BYTES.max(u64::from(dev.limits.min_uniform_buffer_offset_alignment));
        let params_buf = dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: slot * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let stream = Stream {
            encoder: None,
            pass: None,
            params: Vec::new(),
            params_buf,
            slot,
            modules: HashMap::new(),
            pipelines: HashMap::new(),
        };
        Ok(Arc::new(Runtime { dev, stream: Mutex::new(stream), pool: Mutex::new(Pool::default()) }))
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_stream(&self) -> MutexGuard<'_, Stream> {
        self.stream.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn storage(self: &Arc<Self>, len: usize, for_upload: bool) -> GpuStorage {
        let bytes = bucket(4 * len as u64);
        if bytes > self.dev.limits.max_buffer_size {
            panic!(
                "gpu: a tensor of {len} elements needs a {bytes}-byte buffer, over this adapter's max_buffer_size \
                 of {} bytes",
                self.dev.limits.max_buffer_size
            );
        }
        let buffer = self.lock_pool().take(&self.dev.device, bytes, for_upload);
        GpuStorage { buffer: Some(buffer), len, rt: Arc::clone(self) }
    }

    /// A buffer for a kernel to write (its old contents are undefined).
    pub fn output(self: &Arc<Self>, len: usize) -> GpuStorage {
        self.storage(len, false)
    }

    /// A buffer holding `data` (4-byte words), written before any pending command runs.
    pub fn upload<T: bytemuck::Pod>(self: &Arc<Self>, data: &[T]) -> GpuStorage {
        assert_eq!(std::mem::size_of::<T>(), 4, "gpu buffers hold 4-byte words");
        let s = self.storage(data.len(), true);
        if !data.is_empty() {
            self.dev.queue.write_buffer(s.buffer(), 0, bytemuck::cast_slice(data));
        }
        s
    }

    /// Bytes held by tensors and the pool's free lists, and the peak of that.
    pub fn memory(&self) -> (u64, u64, u64) {
        let p = self.lock_pool();
        (p.allocated, p.peak_allocated, p.free_bytes())
    }

    fn binding<'a>(&self, s: &'a GpuStorage) -> wgpu::BindingResource<'a> {
        let bytes = (4 * s.len as u64).max(4);
        let limit = self.dev.limits.max_storage_buffer_binding_size;
        if bytes > limit {
            panic!("gpu: a tensor of {bytes} bytes exceeds this adapter's max_storage_buffer_binding_size ({limit})");
        }
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: s.buffer(),
            offset: 0,
            size: wgpu::BufferSize::new(bytes),
        })
    }

    /// Records one dispatch of `shader`'s `entry` with pipeline constants `consts`,
    /// parameters `params` (binding 0) and `(binding, buffer)` pairs, over `groups`
    /// workgroups. Nothing runs until the next submit.
    pub fn dispatch(
        &self,
        shader: &Shader,
        entry: &'static str,
        consts: &[(&'static str, f64)],
        params: &[u32],
        buffers: &[(u32, &GpuStorage)],
        groups: [u32; 3],
    ) {
        if groups.contains(&0) {
            return;
        }
        let max = self.dev.limits.max_compute_workgroups_per_dimension;
        assert!(groups.iter().all(|&g| g <= max), "gpu: {entry} dispatch {groups:?} over the limit {max}");
        assert!(params.len() <= PARAM_WORDS, "gpu: {entry} has {} parameter words", params.len());
        let mut st = self.lock_stream();
        if st.params.len() as u64 >= st.slot * ARENA_SLOTS {
            self.submit(&mut st);
        }
        let offset = st.params.len() as u64;
        let slot = st.slot as usize;
        st.params.extend_from_slice(bytemuck::cast_slice(params));
        st.params.resize(offset as usize + slot, 0);
        let layout = self.pipeline(&mut st, shader, entry, consts).1.clone();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &st.params_buf,
                offset,
                size: wgpu::BufferSize::new(PARAM_BYTES),
            }),
        }];
        for &(binding, b) in buffers {
            entries.push(wgpu::BindGroupEntry { binding, resource: self.binding(b) });
        }
        let bind_group = self.dev.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &layout,
            entries: &entries,
        });
        let pipeline = self.pipeline(&mut st, shader, entry, consts).0.clone();
        let pass = self.pass(&mut st);
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }

    fn pipeline<'s>(
        &self,
        st: &'s mut Stream,
        shader: &Shader,
        entry: &'static str,
        consts: &[(&'static str, f64)],
    ) -> &'s (wgpu::ComputePipeline, wgpu::BindGroupLayout) {
        let key: PipelineKey = (shader.name, entry, consts.iter().map(|&(n, v)| (n, v.to_bits())).collect());
        if !st.pipelines.contains_key(&key) {
            let device = &self.dev.device;
            let module = st.modules.entry(shader.name).or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(format!("{COMMON}\n{}", shader.sources.join("\n")).into()),
                })
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: consts, ..Default::default() },
                cache: None,
            });
            let layout = pipeline.get_bind_group_layout(0);
            st.pipelines.insert(key.clone(), (pipeline, layout));
        }
        &st.pipelines[&key]
    }

    fn pass<'s>(&self, st: &'s mut Stream) -> &'s mut wgpu::ComputePass<'static> {
        if st.pass.is_none() {
            let encoder = st.encoder.get_or_insert_with(|| {
                self.dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
            });
            let pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            st.pass = Some(pass.forget_lifetime());
        }
        st.pass.as_mut().expect("pass just opened")
    }

    /// Ends the open pass and submits everything recorded so far.
    fn submit(&self, st: &mut Stream) {
        st.pass = None;
        if !st.params.is_empty() {
            self.dev.queue.write_buffer(&st.params_buf, 0, &st.params);
            st.params.clear();
        }
        let encoder = st.encoder.take();
        self.dev.queue.submit(encoder.map(|e| e.finish()));
        self.lock_pool().submitted();
    }

    /// Submits pending work without waiting for it.
    pub fn flush(&self) {
        let mut st = self.lock_stream();
        self.submit(&mut st);
    }

    /// Copies `len` words from `s` starting at word `start` to the host: submits all
    /// pending work and waits for it.
    pub fn read<T: bytemuck::Pod>(&self, s: &GpuStorage, start: usize, len: usize) -> Vec<T> {
        if len == 0 {
            return Vec::new();
        }
        let bytes = 4 * len as u64;
        let staging = self.dev.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut st = self.lock_stream();
        st.pass = None;
        let encoder = st.encoder.get_or_insert_with(|| {
            self.dev.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") })
        });
        encoder.copy_buffer_to_buffer(s.buffer(), 4 * start as u64, &staging, 0, bytes);
        self.submit(&mut st);
        drop(st);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.dev.device.poll(wgpu::PollType::wait_indefinitely()).expect("gpu: device lost while waiting");
        rx.recv().expect("map callback ran").expect("gpu: mapping the read-back buffer failed");
        let data = {
            let view = staging.get_mapped_range(..).expect("gpu: read-back buffer is mapped");
            bytemuck::pod_collect_to_vec::<u8, T>(&view)
        };
        staging.unmap();
        data
    }
}
