//! The WGSL kernel behind [`super::fused_candidate_scores`], launched through burn-cubecl's
//! template API as a backend extension on `CubeBackend`.

use burn::backend::wgpu::{
    CubeBackend, CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous,
    kernel_source,
};
use burn::backend::{
    Backend, backend_extension,
    tensor::{FloatTensor, IntTensor},
};
use burn::cubecl::prelude::*;
use burn::cubecl::server::KernelArguments;
use burn::cubecl::{CubeCount, CubeDim};
use burn::tensor::DType;
use derive_new::new;

/// Candidates handled by one workgroup.
const WORKGROUP_SIZE: u32 = 64;

/// Backends that can run the fused candidate scoring kernel.
#[backend_extension(Cube)]
pub trait CandidateScoringBackend: Backend {
    /// table `[rows, d]`, user `[d]`, idx `[c]` (rows of `table`) → scores `[c]`.
    fn fused_candidate_scores(
        table: FloatTensor<Self>,
        user: FloatTensor<Self>,
        idx: IntTensor<Self>,
    ) -> FloatTensor<Self>;
}

kernel_source!(CandidateScoresWgsl, "./candidate_scores.wgsl");

/// The kernel with its template parameters filled in.
#[derive(Debug)]
struct CandidateScoresKernel {
    cube_dim: CubeDim,
    elem: &'static str,
    index: &'static str,
}

impl KernelSource for CandidateScoresKernel {
    fn source(&self) -> SourceTemplate {
        CandidateScoresWgsl::new()
            .source()
            .register("workgroup_size_x", self.cube_dim.x.to_string())
            .register("elem", self.elem)
            .register("index", self.index)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.cube_dim, self.elem, self.index))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

impl CandidateScoringBackend for CubeBackend {
    fn fused_candidate_scores(
        table: FloatTensor<Self>,
        user: FloatTensor<Self>,
        idx: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        table.assert_is_on_same_device(&user);
        let (table, user, idx) = (
            into_contiguous(table),
            into_contiguous(user),
            into_contiguous(idx),
        );
        let table_shape = table.meta.shape().clone();
        assert_eq!(table_shape.num_dims(), 2, "table must be [rows, d]");
        let d = table_shape[1];
        assert_eq!(user.meta.shape().num_elements(), d, "user vector length");
        let count = idx.meta.shape().num_elements();
        let elem = match table.dtype {
            DType::F32 => "f32",
            DType::F16 => "f16",
            other => panic!("fused_candidate_scores: unsupported float dtype {other:?}"),
        };
        let index = match idx.dtype {
            DType::I32 => "i32",
            DType::U32 => "u32",
            other => panic!("fused_candidate_scores: unsupported index dtype {other:?}"),
        };
        let shape: burn::tensor::Shape = [count].into();
        let buffer = table.client.empty(count * table.dtype.size());
        let out = CubeTensor::new_contiguous(
            table.client.clone(),
            table.device.clone(),
            shape,
            buffer,
            table.dtype,
        );
        if count == 0 {
            return out;
        }
        let cube_dim = CubeDim::new_1d(WORKGROUP_SIZE);
        let info: [u32; 2] = [count as u32, d as u32];
        let info = table.client.create_from_slice(bytemuck::cast_slice(&info));
        table.client.launch(
            Box::new(SourceKernel::new(
                CandidateScoresKernel {
                    cube_dim,
                    elem,
                    index,
                },
                cube_dim,
            )),
            CubeCount::Static((count as u32).div_ceil(WORKGROUP_SIZE), 1, 1),
            KernelArguments::new().with_buffers(vec![
                table.handle.binding(),
                user.handle.binding(),
                idx.handle.binding(),
                out.handle.clone().binding(),
                info.binding(),
            ]),
        );
        out
    }
}
