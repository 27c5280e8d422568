//! A DCN-V2 cross layer: explicit feature crossing, `x_{l+1} = x_0 ⊙ (W x_l + b) + x_l`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// Size of a [`CrossLayer`].
#[derive(Config, Debug)]
pub struct CrossLayerConfig {
    /// Width of the crossed vector (the concatenated features).
    pub width: usize,
}

impl CrossLayerConfig {
    /// Builds the layer on `device` (a full-rank `width × width` map and a bias).
    pub fn init(&self, device: &Device) -> CrossLayer {
        CrossLayer {
            map: LinearConfig::new(self.width, self.width).init(device),
        }
    }
}

/// One cross layer of DCN-V2 (Wang et al., 2021): every output is the input feature it
/// started from times a learned linear function of the current vector, plus that vector, so
/// `L` layers express feature interactions up to degree `L + 1`.
#[derive(Module, Debug)]
pub struct CrossLayer {
    /// `W` and `b`.
    pub map: Linear,
}

impl CrossLayer {
    /// `x0` and `x` `[n, width]` → `x0 ⊙ (W x + b) + x` `[n, width]`.
    pub fn forward(&self, x0: Tensor<2>, x: Tensor<2>) -> Tensor<2> {
        x0.mul(self.map.forward(x.clone())).add(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::TensorData;

    #[test]
    fn a_cross_layer_computes_x0_times_an_affine_map_of_x_plus_x() {
        let device = Device::flex();
        let mut layer = CrossLayerConfig::new(2).init(&device);
        // burn's Linear: y = x·W + b with W [in, out].
        layer.map.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
            &device,
        ));
        layer.map.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(vec![0.5f32, -1.0], [2]),
            &device,
        )));
        let x0 = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, -1.0], [1, 2]), &device);
        let x = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 3.0], [1, 2]), &device);
        // x·W + b = [1 + 9 + 0.5, 2 + 12 − 1] = [10.5, 13]; x0 ⊙ that + x = [22, −10].
        let y: Vec<f32> = layer.forward(x0, x).into_data().try_into_vec().unwrap();
        assert_eq!(y, vec![22.0, -10.0]);
    }
}
