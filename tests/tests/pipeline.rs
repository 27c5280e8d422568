//! End to end natively: train on the synthetic world, export, reload, evaluate; checkpoints and
//! resume.

use burn::tensor::Device;
use encore::backend::Backend;
use encore::evaluation::evaluate;
use encore::training::model::objectives::EventWeights;
use encore::training::{Checkpoint, CheckpointPolicy, Monitor, TrainConfig, TrainedModel, train};
use encore_core::data::split::MemberHistory;
use encore_core::{Reranker, SyntheticWorld, SyntheticWorldConfig};
use encore_tests::{split, temp_dir, tiny_config};

/// burn's random number generator is process-wide: trainings running at the same time in one
/// process interleave their draws. The tests that compare runs take turns.
static ONE_TRAINING_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Trains quietly on the CPU backend.
fn train_cpu(
    world: &SyntheticWorld,
    train_set: &[MemberHistory],
    cfg: &TrainConfig,
    checkpoints: CheckpointPolicy<'_>,
) -> anyhow::Result<TrainedModel> {
    train(
        train_set,
        &world.catalog,
        cfg,
        Backend::Cpu,
        checkpoints,
        Monitor::default(),
    )
}

#[test]
fn trained_model_beats_most_popular_on_held_out_events() {
    let _turn = ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let world = SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 500,
        titles: 150,
        days: 60,
        seed: 5,
        ..Default::default()
    });
    let (train_set, test_set) = split(&world);
    let cfg = TrainConfig {
        epochs: 4,
        model: TrainConfig::default()
            .model
            .with_d_model(32)
            .with_d_ff(64)
            .with_max_len(32)
            .with_n_layers(1),
        ..TrainConfig::default()
    };
    let trained = train_cpu(&world, &train_set, &cfg, CheckpointPolicy::default()).unwrap();
    assert!(
        trained.epochs.last().unwrap().loss < trained.epochs[0].loss,
        "loss went down"
    );
    let reranker = Reranker::from_bytes(&trained.weights, &Device::flex()).unwrap();
    let report = evaluate(&reranker, &world.catalog, &train_set, &test_set).unwrap();
    let (m, p) = (report.model.ndcg_at(10), report.most_popular.ndcg_at(10));
    assert!(m > p * 1.2, "model NDCG@10 {m:.4} vs most popular {p:.4}");
}

#[test]
fn resumed_training_matches_uninterrupted_training() {
    let _turn = ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let world = encore_tests::small_world();
    let (train_set, _) = split(&world);
    let dir = temp_dir("resume");
    let mut cfg = tiny_config(2);
    cfg.model.dropout = 0.0;
    let straight = train_cpu(&world, &train_set, &cfg, CheckpointPolicy::default()).unwrap();

    // "Crash" after epoch 1: a run asked for one epoch leaves its checkpoint behind.
    let ck = dir.join("run.ckpt");
    let first = TrainConfig {
        epochs: 1,
        ..cfg.clone()
    };
    train_cpu(
        &world,
        &train_set,
        &first,
        CheckpointPolicy {
            path: Some(&ck),
            resume: false,
        },
    )
    .unwrap();
    assert_eq!(Checkpoint::read(&ck).unwrap().epochs.len(), 1);
    let resumed = train_cpu(
        &world,
        &train_set,
        &cfg,
        CheckpointPolicy {
            path: Some(&ck),
            resume: true,
        },
    )
    .unwrap();
    assert_eq!(resumed.epochs.len(), 2);
    assert!(
        (resumed.epochs[1].loss - straight.epochs[1].loss).abs() < 1e-4,
        "{} vs {}",
        resumed.epochs[1].loss,
        straight.epochs[1].loss
    );
    let a = encore_core::weights::load_model(&straight.weights, &Device::flex()).unwrap();
    let b =
        encore_core::weights::load_model(&Checkpoint::read(&ck).unwrap().weights, &Device::flex())
            .unwrap();
    let diff = (a.model.item_vectors() - b.model.item_vectors())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-4, "weights differ by {diff}");

    // A resume with other options is refused rather than silently mixing runs.
    let other = TrainConfig {
        learning_rate: 0.5,
        ..cfg
    };
    let err = train_cpu(
        &world,
        &train_set,
        &other,
        CheckpointPolicy {
            path: Some(&ck),
            resume: true,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("other training options"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn exported_runtime_scores_equal_the_training_model_with_content_heads_and_roll_up() {
    let _turn = ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let world = encore_tests::small_world();
    let (train_set, _) = split(&world);
    let mut cfg = TrainConfig {
        content_embeddings: true,
        ..tiny_config(1)
    };
    cfg.model.dropout = 0.0;
    cfg.model.rollup_window_s = 3 * 3600;
    assert!(cfg.objectives.any_aux() && cfg.objectives.mtp_items > 1);
    let trained = train_cpu(&world, &train_set, &cfg, CheckpointPolicy::default()).unwrap();
    assert!(trained.model.item_encoder.is_some() && trained.model.heads.is_some());
    let reranker = Reranker::from_bytes(&trained.weights, &Device::flex()).unwrap();

    let history = &train_set
        .iter()
        .max_by_key(|h| h.events.len())
        .unwrap()
        .events;
    let request = encore_core::RerankRequest {
        surface: encore_core::Surface::Search,
        timestamp: Some(history.last().unwrap().timestamp + 600),
        device: None,
        country: None,
        prompt: None,
    };
    let runtime = reranker
        .score_catalog(&[(history, request.clone())])
        .unwrap()
        .remove(0);

    // Training side: the training model, its item features, its tokenizer (with roll-up).
    let model = &trained.model;
    let device = model.model.embedding.position.weight.val().device();
    let seq = trained
        .config
        .model
        .tokenizer()
        .serving_sequence(
            world.catalog.vocabulary(),
            history,
            &request.context(history),
        )
        .unwrap();
    let rolled = trained
        .config
        .model
        .tokenizer()
        .roll_up(world.catalog.vocabulary(), history)
        .unwrap();
    assert!(rolled.len() < history.len(), "roll-up merged some plays");
    let batch = encore_core::TokenBatch::new(&[seq], &device);
    let table = model.item_table(trained.features.as_ref(), None);
    let fm = &model.model;
    let hidden = fm.forward(&batch, &fm.embedding.tables(table.clone()), None, false);
    let user = fm.user_representation(encore_core::model::last_rows(hidden, &batch.lengths));
    let [rows, _] = table.dims();
    let scores: Vec<f32> = user
        .matmul(table.slice(2..rows).transpose())
        .into_data()
        .try_into_vec()
        .unwrap();
    let worst = scores
        .iter()
        .zip(&runtime)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst <= 1e-4, "largest difference {worst}");
}

/// Two workers, each differentiating half of every batch on its own fork of the model, train
/// like one thread over the whole batch. Their gradients agree exactly (unit test
/// `shard_gradients_add_up_to_the_whole_batch`); here whole runs, where float summation order
/// and Adam's per-parameter normalisation let the trajectories drift a little apart: the loss
/// stays within 0.5% of the one-thread run's at every epoch (one shard's gradient alone drifts
/// 1.8% by epoch 4 on this set-up). With the auxiliary heads on, whose many rarely-hit
/// parameters Adam scales up whatever their gradient's size, the drift is larger (0.7% in
/// epoch 1), so they are off here.
#[test]
fn two_workers_train_like_one() {
    let _turn = ONE_TRAINING_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let world = SyntheticWorld::generate(&SyntheticWorldConfig {
        members: 120,
        titles: 60,
        days: 30,
        seed: 9,
        ..Default::default()
    });
    let (train_set, _) = split(&world);
    let mut cfg = tiny_config(4);
    cfg.model.dropout = 0.0;
    cfg.unknown_id_rate = 0.0;
    cfg.objectives.softmax = encore::training::model::objectives::SoftmaxKind::Full;
    cfg.objectives.mtp_items = 1;
    cfg.objectives.genre_weight = 0.0;
    cfg.objectives.action_weight = 0.0;
    cfg.objectives.duration_weight = 0.0;
    cfg.objectives.time_to_next_weight = 0.0;
    cfg.objectives.event_weights = EventWeights::EQUAL;
    let one = train_cpu(&world, &train_set, &cfg, CheckpointPolicy::default()).unwrap();
    let two = train_cpu(
        &world,
        &train_set,
        &TrainConfig {
            workers: 2,
            ..cfg.clone()
        },
        CheckpointPolicy::default(),
    )
    .unwrap();
    assert!(two.epochs[3].loss < two.epochs[0].loss);
    // Relative loss differences per epoch: the two runs sum the same gradients in another
    // order, so they drift apart by float rounding (measured with this seed: 0.19%, 0.45%,
    // 0.18%, 0.29% over the four epochs; 0.02% to 0.9% in the world before its surfaces
    // differed). A worker that dropped or doubled its share of a batch would differ by far
    // more from the first epoch on.
    let drift: Vec<f64> = one
        .epochs
        .iter()
        .zip(&two.epochs)
        .map(|(a, b)| (a.loss - b.loss).abs() / a.loss.abs())
        .collect();
    eprintln!("relative loss drift per epoch: {drift:?}");
    assert!(drift[0] < 3e-3, "epoch 1 differs: {drift:?}");
    assert!(drift[1] < 5e-3, "epoch 2 differs: {drift:?}");
    assert!(
        drift.iter().all(|&d| d < 2e-2),
        "losses drift apart: {drift:?}"
    );
}
