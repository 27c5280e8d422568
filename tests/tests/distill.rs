//! Distillation end to end: a tiny teacher trained on a small world teaches a smaller student;
//! the student's score term falls as it learns, it exports like any model, and a student
//! bigger than its teacher is refused.

use encore::backend::Backend;
use encore::training::TrainConfig;
use encore::training::distill::DistillConfig;
use encore_core::Reranker;
use encore_tests::{small_world, temp_dir, tiny_config, tiny_weight_file, train_on};

/// A student of width 8 with one layer (the teacher: width 16, two layers), learning from the
/// teacher at `path`.
fn student(path: &std::path::Path, epochs: usize) -> TrainConfig {
    let tiny = tiny_config(epochs);
    TrainConfig {
        model: tiny
            .model
            .clone()
            .with_d_model(8)
            .with_n_layers(1)
            .with_d_ff(16),
        distill: Some(DistillConfig {
            teacher: path.to_path_buf(),
            top_k: 4,
            ..Default::default()
        }),
        ..tiny
    }
}

#[test]
fn a_student_learns_from_its_teacher_and_exports_like_any_model() {
    let world = small_world();
    let dir = temp_dir("distill");
    let teacher = dir.join("teacher.encore");
    std::fs::write(&teacher, tiny_weight_file(&world, 3)).unwrap();
    let run = |cfg: &TrainConfig| train_on(&world, cfg).unwrap();
    let distilled = run(&student(&teacher, 3));
    let kl: Vec<f64> = distilled
        .epochs
        .iter()
        .map(|e| e.teacher_scores_loss)
        .collect();
    let align: Vec<f64> = distilled.epochs.iter().map(|e| e.alignment_loss).collect();
    assert!(kl[0] > 0.0 && kl[2] < kl[0], "teacher score term {kl:?}");
    assert!(
        align[0] > 0.0 && align[2] < align[0],
        "alignment term {align:?}"
    );
    // The projection is training-only: the export is a plain student of width 8.
    let reranker = Reranker::from_bytes(&distilled.weights, &Backend::Cpu.device()).unwrap();
    assert_eq!(reranker.config().d_model, 8);

    // Both teacher terms off: the teacher is not even read, the run is a from-scratch run.
    let mut scratch = student(&dir.join("absent.encore"), 1);
    if let Some(d) = scratch.distill.as_mut() {
        d.scores_weight = 0.0;
        d.align_weight = 0.0;
    }
    let plain = run(&scratch);
    assert_eq!(plain.epochs[0].teacher_scores_loss, 0.0);
    assert_eq!(plain.epochs[0].alignment_loss, 0.0);

    // A student wider than its teacher is refused before any training.
    let mut big = student(&teacher, 1);
    big.model = big.model.with_d_model(32).with_n_layers(2).with_d_ff(64);
    let e = train_on(&world, &big).unwrap_err().to_string();
    assert!(e.contains("more than its teacher's"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}
