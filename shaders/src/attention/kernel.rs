//! The WGSL kernel behind [`super::fused_causal_attention`], launched through burn-cubecl's
//! template API as a backend extension on `CubeBackend`.

use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
    kernel_source,
};
use burn::backend::{Backend, backend_extension, tensor::FloatTensor};
use burn::cubecl::prelude::*;
use burn::cubecl::server::KernelArguments;
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::DType;
use derive_new::new;

/// Largest head dimension the kernel's private accumulator holds.
pub const MAX_HEAD_DIM: usize = 128;
/// Query rows handled by one workgroup.
const WORKGROUP_SIZE: u32 = 64;

/// Backends that can run the fused causal attention kernel.
#[backend_extension(Cube)]
pub trait FusedAttentionBackend: Backend {
    /// q, k, v: `[..., seq, head_dim]` (leading dims flattened); returns `[..., seq, head_dim]`.
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

kernel_source!(CausalAttentionWgsl, "./causal_attention.wgsl");

/// The kernel with its template parameters filled in.
#[derive(Debug)]
struct CausalAttentionKernel {
    cube_dim: CubeDim,
    elem: &'static str,
}

impl KernelSource for CausalAttentionKernel {
    fn source(&self) -> SourceTemplate {
        CausalAttentionWgsl::new()
            .source()
            .register("workgroup_size_x", self.cube_dim.x.to_string())
            .register("elem", self.elem)
            .register("max_hd", MAX_HEAD_DIM.to_string())
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.cube_dim, self.elem))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl FusedAttentionBackend for CubeBackend {
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        q.assert_is_on_same_device(&k);
        q.assert_is_on_same_device(&v);
        let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
        let shape = q.meta.shape().clone();
        assert_eq!(&shape, k.meta.shape(), "q and k shapes differ");
        assert_eq!(&shape, v.meta.shape(), "q and v shapes differ");
        let n = shape.num_dims();
        let (s, d) = (shape[n - 2], shape[n - 1]);
        assert!(d <= MAX_HEAD_DIM, "head dim {d} > {MAX_HEAD_DIM}");
        let rows = shape.num_elements() / d.max(1);
        let elem = match q.dtype {
            DType::F32 => "f32",
            DType::F16 => "f16",
            other => panic!("fused_causal_attention: unsupported dtype {other:?}"),
        };
        let buffer = q.client.empty(shape.num_elements() * q.dtype.size());
        let out =
            CubeTensor::new_contiguous(q.client.clone(), q.device.clone(), shape, buffer, q.dtype);
        if rows == 0 {
            return out;
        }
        let cube_dim = CubeDim::new_1d(WORKGROUP_SIZE);
        let info: [u32; 3] = [rows as u32, s as u32, d as u32];
        let info = q.client.create_from_slice(bytemuck::cast_slice(&info));
        q.client.launch(
            Box::new(SourceKernel::new(
                CausalAttentionKernel { cube_dim, elem },
                cube_dim,
            )),
            CubeCount::Static((rows as u32).div_ceil(WORKGROUP_SIZE), 1, 1),
            KernelArguments::new().with_buffers(vec![
                q.handle.binding(),
                k.handle.binding(),
                v.handle.binding(),
                out.handle.clone().binding(),
                info.binding(),
            ]),
        );
        out
    }
}
