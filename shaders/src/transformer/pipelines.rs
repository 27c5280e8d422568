//! The transformer's five compute pipelines, compiled once per model.

use super::WORKGROUP;

/// The five compute pipelines.
#[derive(Debug)]
pub(super) struct Pipelines {
    pub(super) layer_norm: wgpu::ComputePipeline,
    pub(super) linear: wgpu::ComputePipeline,
    pub(super) attention: wgpu::ComputePipeline,
    pub(super) user: wgpu::ComputePipeline,
    pub(super) scores: wgpu::ComputePipeline,
}

impl Pipelines {
    pub(super) fn new(device: &wgpu::Device) -> Self {
        let scores = include_str!("../scoring/candidate_scores.wgsl")
            .replace("{{ elem }}", "f32")
            .replace("{{ index }}", "u32")
            .replace("{{ workgroup_size_x }}", &WORKGROUP.to_string());
        let pipeline = |label: &str, source: &str| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        Self {
            layer_norm: pipeline("layer_norm", include_str!("layer_norm.wgsl")),
            linear: pipeline("linear", include_str!("linear.wgsl")),
            attention: pipeline("row_attention", include_str!("row_attention.wgsl")),
            user: pipeline(
                "user_representation",
                include_str!("user_representation.wgsl"),
            ),
            scores: pipeline("candidate_scores", &scores),
        }
    }
}
