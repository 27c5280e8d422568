//! Fine-tuning with frozen parts: a run started from a trained file keeps the frozen parts
//! byte-identical and moves the rest; a file of another shape and an unknown part are refused.

use encore::training::TrainConfig;
use encore_core::WeightFile;
use encore_tests::{small_world, temp_dir, tiny_config, tiny_weight_file, train_on};

/// Every tensor of a weight file, by name, as stored (f32 files: the exact bytes).
fn parameters(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let file = WeightFile::decode(bytes).unwrap();
    let part = file.foundation_model().unwrap();
    part.tensors
        .iter()
        .map(|t| (t.name.clone(), file.tensor_bytes(t).to_vec()))
        .collect()
}

#[test]
fn frozen_parts_stay_byte_identical_and_the_rest_moves() {
    let world = small_world();
    let dir = temp_dir("fine-tune");
    let base = tiny_weight_file(&world, 1);
    let path = dir.join("base.encore");
    std::fs::write(&path, &base).unwrap();
    let run = |cfg: &TrainConfig| train_on(&world, cfg);
    let cfg = TrainConfig {
        init_from: Some(path.clone()),
        freeze: vec!["embeddings".into(), "layers:0".into()],
        ..tiny_config(1)
    };
    let tuned = run(&cfg).unwrap();
    let (before, after) = (parameters(&base), parameters(&tuned.weights));
    assert_eq!(before.len(), after.len());
    let (mut frozen, mut moved) = (0, 0);
    for ((name, a), (name_b, b)) in before.iter().zip(&after) {
        assert_eq!(name, name_b);
        let is_frozen = name.starts_with("embedding.") || name.starts_with("blocks.0.");
        if is_frozen {
            assert_eq!(a, b, "{name} is frozen");
            frozen += 1;
        } else if a != b {
            moved += 1;
        }
    }
    assert!(frozen >= 4, "{frozen} frozen tensors");
    assert!(moved >= 4, "only {moved} unfrozen tensors moved");
    assert!(after.iter().any(|(n, _)| n.starts_with("blocks.1.")));

    // Another shape, an unknown part, a layer the model does not have.
    let wide = TrainConfig {
        model: cfg.model.clone().with_d_model(32),
        ..cfg.clone()
    };
    let e = format!("{:#}", run(&wide).unwrap_err());
    assert!(
        e.contains("training.init_from") && e.contains("holds the shape"),
        "{e}"
    );
    for (part, says) in [
        ("head", "unknown part \"head\""),
        ("layers:5", "layers:5, but the model has 2 layers"),
    ] {
        let bad = TrainConfig {
            freeze: vec![part.into()],
            ..cfg.clone()
        };
        let e = format!("{:#}", run(&bad).unwrap_err());
        assert!(e.contains(says), "{e}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
