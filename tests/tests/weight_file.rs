//! The weight file: round trip, and every kind of bad file rejected with a typed error.

use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use encore_core::weights::{
    FORMAT_VERSION, FoundationModelPart, MAGIC, Manifest, Part, PartKind, Quantization,
    TensorDType, TensorEntry, WeightFile, WeightFileError, expected_tensors, load_model,
    load_serving_within, requantize, save_model,
};
use encore_core::{FoundationModelConfig, Reranker};

fn model_file() -> (Vec<u8>, FoundationModelConfig) {
    let config = FoundationModelConfig::new(30)
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_layers(2)
        .with_d_ff(32)
        .with_max_len(12)
        .with_dropout(0.0);
    let model = config.init(&Device::flex());
    let ids: Vec<u32> = (100..130).collect();
    (save_model(&model, &config, &ids, Quantization::F32), config)
}

/// Rebuilds a bundle holding one (possibly hostile) foundation model part and a data section,
/// with a valid checksum.
fn assemble(header: &FoundationModelPart, data: &[u8], version: u32) -> Vec<u8> {
    let manifest = Manifest::foundation_model(header.clone());
    assemble_encoded(&postcard::to_allocvec(&manifest).unwrap(), data, version)
}

/// Rebuilds a file from an encoded header and a data section, with a valid checksum.
fn assemble_encoded(head: &[u8], data: &[u8], version: u32) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(version.to_le_bytes());
    out.extend((head.len() as u32).to_le_bytes());
    out.extend(head);
    out.resize(out.len().div_ceil(16) * 16, 0);
    out.extend(data);
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_le_bytes());
    out
}

fn parts(bytes: &[u8]) -> (FoundationModelPart, Vec<u8>) {
    let header = WeightFile::decode(bytes)
        .unwrap()
        .foundation_model()
        .unwrap()
        .clone();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let start = (16 + header_len).div_ceil(16) * 16;
    (header, bytes[start..bytes.len() - 4].to_vec())
}

fn err(bytes: &[u8]) -> WeightFileError {
    load_model(bytes, &Device::flex())
        .err()
        .expect("file must be rejected")
}

#[test]
fn expected_tensor_list_matches_the_model() {
    let config = FoundationModelConfig::new(30)
        .with_d_model(16)
        .with_n_heads(2)
        .with_n_layers(2)
        .with_d_ff(32)
        .with_max_len(12);
    let model = config.init(&Device::flex());
    let mut got: Vec<(String, Vec<usize>)> = model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.to_vec()))
        .collect();
    let mut want = expected_tensors(&config);
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        model.num_params(),
        want.iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>()
    );
}

#[test]
fn round_trip_keeps_every_weight() {
    let (bytes, config) = model_file();
    let loaded = load_model(&bytes, &Device::flex()).unwrap();
    assert_eq!(loaded.config, config);
    assert_eq!(
        loaded.items.ids(),
        (100..130).collect::<Vec<u32>>().as_slice()
    );
    let again = save_model(
        &loaded.model,
        &loaded.config,
        loaded.items.ids(),
        Quantization::F32,
    );
    assert_eq!(again, bytes, "save(load(file)) is byte-identical");
}

#[test]
fn truncated_and_corrupted_files_are_rejected() {
    let (bytes, _) = model_file();
    assert!(matches!(
        err(&bytes[..10]),
        WeightFileError::TooShort { len: 10, .. }
    ));
    for cut in [bytes.len() / 2, bytes.len() - 1, 40] {
        assert!(
            matches!(err(&bytes[..cut]), WeightFileError::ChecksumMismatch { .. }),
            "cut at {cut}"
        );
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    assert!(matches!(
        err(&flipped),
        WeightFileError::ChecksumMismatch { .. }
    ));
    let mut foreign = bytes.clone();
    foreign[..8].copy_from_slice(b"PK\x03\x04zip!");
    assert!(matches!(err(&foreign), WeightFileError::BadMagic { .. }));
    assert!(matches!(
        err(b"GIF89a........................."),
        WeightFileError::BadMagic { .. }
    ));
}

#[test]
fn other_format_versions_are_rejected() {
    let (bytes, _) = model_file();
    let (header, data) = parts(&bytes);
    let e = err(&assemble(&header, &data, FORMAT_VERSION + 1));
    assert_eq!(
        e,
        WeightFileError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    assert!(e.to_string().contains("versions 2 to 5"), "{e}");
    assert!(matches!(
        err(&assemble(&header, &data, 1)),
        WeightFileError::UnsupportedVersion { found: 1, .. }
    ));
}

/// The model spec of version 4: the shape as fixed-width integers.
#[derive(serde::Serialize)]
struct ModelSpecV4 {
    n_items: u32,
    d_model: u32,
    n_heads: u32,
    n_layers: u32,
    d_ff: u32,
    max_len: u32,
    rollup_window_s: u64,
    context_features: bool,
    scale_embedding: bool,
}

/// The version-4 header: one model, no manifest.
#[derive(serde::Serialize)]
struct HeaderV4<'a> {
    model: ModelSpecV4,
    item_ids: &'a [u32],
    tensors: &'a [TensorEntry],
    quantization: Quantization,
}

fn assemble_v4(header: &FoundationModelPart, data: &[u8]) -> Vec<u8> {
    let c = &header.config;
    let v4 = HeaderV4 {
        model: ModelSpecV4 {
            n_items: c.n_items as u32,
            d_model: c.d_model as u32,
            n_heads: c.n_heads as u32,
            n_layers: c.n_layers as u32,
            d_ff: c.d_ff as u32,
            max_len: c.max_len as u32,
            rollup_window_s: c.rollup_window_s,
            context_features: c.context_features,
            scale_embedding: c.scale_embedding,
        },
        item_ids: &header.item_ids,
        tensors: &header.tensors,
        quantization: header.quantization,
    };
    assemble_encoded(&postcard::to_allocvec(&v4).unwrap(), data, 4)
}

/// The model spec of versions 2 and 3: the same fields without the embedding scale.
#[derive(serde::Serialize)]
struct ModelSpecV3 {
    n_items: u32,
    d_model: u32,
    n_heads: u32,
    n_layers: u32,
    d_ff: u32,
    max_len: u32,
    rollup_window_s: u64,
    context_features: bool,
}

impl ModelSpecV3 {
    fn of(m: &FoundationModelConfig) -> Self {
        Self {
            n_items: m.n_items as u32,
            d_model: m.d_model as u32,
            n_heads: m.n_heads as u32,
            n_layers: m.n_layers as u32,
            d_ff: m.d_ff as u32,
            max_len: m.max_len as u32,
            rollup_window_s: m.rollup_window_s,
            context_features: m.context_features,
        }
    }
}

/// The version-2 header: no quantization field.
#[derive(serde::Serialize)]
struct HeaderV2<'a> {
    model: ModelSpecV3,
    item_ids: &'a [u32],
    tensors: &'a [TensorEntry],
}

/// The version-3 header: the quantization, but no embedding scale.
#[derive(serde::Serialize)]
struct HeaderV3<'a> {
    model: ModelSpecV3,
    item_ids: &'a [u32],
    tensors: &'a [TensorEntry],
    quantization: Quantization,
}

fn assemble_v2(header: &FoundationModelPart, data: &[u8]) -> Vec<u8> {
    let v2 = HeaderV2 {
        model: ModelSpecV3::of(&header.config),
        item_ids: &header.item_ids,
        tensors: &header.tensors,
    };
    assemble_encoded(&postcard::to_allocvec(&v2).unwrap(), data, 2)
}

fn assemble_v3(header: &FoundationModelPart, data: &[u8]) -> Vec<u8> {
    let v3 = HeaderV3 {
        model: ModelSpecV3::of(&header.config),
        item_ids: &header.item_ids,
        tensors: &header.tensors,
        quantization: header.quantization,
    };
    assemble_encoded(&postcard::to_allocvec(&v3).unwrap(), data, 3)
}

/// A weight file of a model without the embedding scale (what versions 2 and 3 held).
fn unscaled_model_file() -> Vec<u8> {
    let (_, config) = model_file();
    let config = config.with_scale_embedding(false);
    let model = config.init(&Device::flex());
    let ids: Vec<u32> = (100..130).collect();
    save_model(&model, &config, &ids, Quantization::F32)
}

#[test]
fn version_2_and_3_files_still_load_without_the_embedding_scale() {
    let bytes = unscaled_model_file();
    let (header, data) = parts(&bytes);
    for old in [assemble_v2(&header, &data), assemble_v3(&header, &data)] {
        let loaded = load_model(&old, &Device::flex()).unwrap();
        assert!(!loaded.config.scale_embedding);
        let again = save_model(
            &loaded.model,
            &loaded.config,
            loaded.items.ids(),
            Quantization::F32,
        );
        assert_eq!(again, bytes, "an old file holds the same model");
    }

    // A version-3 file keeps its quantization.
    let f16 = requantize(&bytes, Quantization::F16).unwrap();
    let (h16, d16) = parts(&f16);
    let loaded = load_model(&assemble_v3(&h16, &d16), &Device::flex()).unwrap();
    assert_eq!(loaded.quantization, Quantization::F16);

    // A version-2 file could only hold f32.
    assert!(matches!(
        err(&assemble_v2(&h16, &d16)),
        WeightFileError::InvalidTensor { reason, .. } if reason.contains("version-2")
    ));
}

#[test]
fn the_embedding_scale_survives_the_file_and_changes_the_scores() {
    let (scaled, config) = model_file();
    assert!(config.scale_embedding, "new models scale their embeddings");
    let loaded = load_model(&scaled, &Device::flex()).unwrap();
    assert!(loaded.config.scale_embedding);
    // The same weights read as an unscaled (version-3) model score differently.
    let (header, data) = parts(&scaled);
    let unscaled = load_model(&assemble_v3(&header, &data), &Device::flex()).unwrap();
    let scores = |m: &encore_core::weights::LoadedModel| {
        let r = Reranker::new(m.model.clone(), m.config.clone(), m.items.clone());
        let history: Vec<_> = [100u32, 105, 111]
            .iter()
            .enumerate()
            .map(|(i, &item)| encore_core::Event::implicit(1, item, 1_000 + i as i64 * 60))
            .collect();
        r.rerank(
            &history,
            &[101, 102, 103],
            &encore_core::RerankRequest::on(encore_core::Surface::Home),
        )
        .unwrap()
        .into_iter()
        .map(|s| s.score)
        .collect::<Vec<f32>>()
    };
    let (a, b) = (scores(&loaded), scores(&unscaled));
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4),
        "{a:?} vs {b:?}"
    );
}

fn weights_of(bytes: &[u8]) -> Vec<(String, Vec<f32>)> {
    let loaded = load_model(bytes, &Device::flex()).unwrap();
    loaded
        .model
        .collect(None, None, false)
        .into_iter()
        .map(|t| {
            let (name, _, _, _, b) = t.into_parts().unwrap();
            (name, bytemuck::pod_collect_to_vec(&b))
        })
        .collect()
}

#[test]
fn f16_and_int8_files_are_smaller_state_their_storage_and_stay_close() {
    let (bytes, _) = model_file();
    let exact = weights_of(&bytes);
    for (q, max_rel, max_ratio) in [
        (Quantization::F16, 1e-3, 0.6),
        (Quantization::Int8, 1.0 / 127.0, 0.4),
    ] {
        let small = requantize(&bytes, q).unwrap();
        assert!(
            (small.len() as f64) < max_ratio * bytes.len() as f64,
            "{q:?}: {} vs {} bytes",
            small.len(),
            bytes.len()
        );
        let file = WeightFile::decode(&small).unwrap();
        let header = file.foundation_model().unwrap();
        assert_eq!(header.quantization, q);
        for t in &header.tensors {
            let want = if t.shape.len() == 1 {
                TensorDType::F32
            } else {
                q.dtype_for(&[2, 2])
            };
            assert_eq!(t.dtype, want, "{}", t.name);
        }
        for ((name, a), (_, b)) in exact.iter().zip(weights_of(&small)) {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= max_rel * scale + 1e-7,
                    "{q:?} {name}: {x} vs {y}"
                );
            }
        }
        // Requantizing back to f32 keeps the (rounded) weights exactly.
        let back = requantize(&small, Quantization::F32).unwrap();
        assert_eq!(weights_of(&back), weights_of(&small));
    }
}

#[test]
fn hostile_int8_tensors_are_rejected() {
    let (bytes, _) = model_file();
    let int8 = requantize(&bytes, Quantization::Int8).unwrap();
    let (header, mut data) = parts(&int8);
    let t = header
        .tensors
        .iter()
        .find(|t| t.name == "blocks.1.attention.key.weight")
        .unwrap()
        .clone();
    // A NaN scale.
    let at = t.offset as usize + 4 * 3;
    let saved = data[at..at + 4].to_vec();
    data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(matches!(
        err(&assemble(&header, &data, FORMAT_VERSION)),
        WeightFileError::InvalidTensor { name, reason } if name == t.name && reason.contains("row 3")
    ));
    data[at..at + 4].copy_from_slice(&saved);
    // A length that ignores the scales.
    let mut short = header.clone();
    let e = short.tensors.iter_mut().find(|e| e.name == t.name).unwrap();
    e.len -= 16 * 4;
    assert!(matches!(
        err(&assemble(&short, &data, FORMAT_VERSION)),
        WeightFileError::InvalidTensor { name, .. } if name == t.name
    ));
    // The untouched file loads.
    assert!(load_model(&assemble(&header, &data, FORMAT_VERSION), &Device::flex()).is_ok());
}

#[test]
fn hostile_headers_never_allocate_what_they_claim() {
    let (bytes, _) = model_file();
    let (header, data) = parts(&bytes);

    // A header length past the end of the file.
    let mut h = bytes[..bytes.len() - 4].to_vec();
    h[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend(crc.to_le_bytes());
    assert!(matches!(err(&h), WeightFileError::HeaderOutOfBounds { .. }));

    // Garbage header bytes.
    let mut g = bytes[..bytes.len() - 4].to_vec();
    for b in &mut g[16..40] {
        *b = 0xff;
    }
    let crc = crc32fast::hash(&g);
    g.extend(crc.to_le_bytes());
    assert!(matches!(err(&g), WeightFileError::MalformedHeader(_)));

    // A huge model shape (would be terabytes if allocated).
    let mut huge = header.clone();
    huge.config.n_items = 4_000_000_000;
    assert!(matches!(
        err(&assemble(&huge, &data, FORMAT_VERSION)),
        WeightFileError::InvalidModel(_)
    ));
    let mut huge = header.clone();
    huge.config.d_model = 1 << 20;
    assert!(matches!(
        err(&assemble(&huge, &data, FORMAT_VERSION)),
        WeightFileError::InvalidModel(_)
    ));

    // A tensor whose shape product overflows, and one whose bytes lie past the data.
    let mut h2 = header.clone();
    h2.tensors[0].shape = vec![u32::MAX, u32::MAX, u32::MAX, u32::MAX];
    assert!(matches!(
        err(&assemble(&h2, &data, FORMAT_VERSION)),
        WeightFileError::InvalidTensor { .. }
    ));
    let mut h3 = header.clone();
    h3.tensors[1].offset = u64::MAX - 2;
    let e = err(&assemble(&h3, &data, FORMAT_VERSION));
    assert!(
        matches!(&e, WeightFileError::InvalidTensor { name, .. } if name == &header.tensors[1].name),
        "{e}"
    );

    // A shape that disagrees with the model spec.
    let mut h4 = header.clone();
    let t = h4
        .tensors
        .iter_mut()
        .find(|t| t.name == "norm.gamma")
        .unwrap();
    t.shape = vec![8, 2];
    let e = err(&assemble(&h4, &data, FORMAT_VERSION));
    assert!(e.to_string().contains("norm.gamma"), "{e}");

    // A missing tensor, an extra tensor.
    let mut h5 = header.clone();
    h5.tensors.retain(|t| t.name != "blocks.1.ff_in.bias");
    assert_eq!(
        err(&assemble(&h5, &data, FORMAT_VERSION)),
        WeightFileError::MissingTensor("blocks.1.ff_in.bias".into())
    );
    let mut h6 = header.clone();
    // (Its own bytes after the data: at an offset already in use it would overlap.)
    let mut data6 = data.clone();
    data6.extend([0u8; 16]);
    h6.tensors.push(TensorEntry {
        name: "evil".into(),
        dtype: TensorDType::F32,
        shape: vec![1],
        offset: data.len() as u64,
        len: 4,
    });
    assert!(
        matches!(err(&assemble(&h6, &data6, FORMAT_VERSION)), WeightFileError::InvalidTensor { name, .. } if name == "evil")
    );
    h6.tensors.last_mut().unwrap().offset = 0;
    assert!(matches!(
        err(&assemble(&h6, &data6, FORMAT_VERSION)),
        WeightFileError::OverlappingTensors { .. }
    ));

    // Item ids that do not match the item rows, or repeat.
    let mut h7 = header.clone();
    h7.item_ids.pop();
    assert!(matches!(
        err(&assemble(&h7, &data, FORMAT_VERSION)),
        WeightFileError::InvalidModel(_)
    ));
    let mut h8 = header.clone();
    h8.item_ids[3] = h8.item_ids[4];
    assert!(matches!(
        err(&assemble(&h8, &data, FORMAT_VERSION)),
        WeightFileError::InvalidModel(_)
    ));
}

#[test]
fn nan_weights_are_rejected_with_the_tensor_name() {
    let (bytes, _) = model_file();
    let (header, mut data) = parts(&bytes);
    let t = header
        .tensors
        .iter()
        .find(|t| t.name == "blocks.0.ff_out.weight")
        .unwrap();
    let at = t.offset as usize + 4 * 5;
    data[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(
        err(&assemble(&header, &data, FORMAT_VERSION)),
        WeightFileError::NonFinite {
            name: "blocks.0.ff_out.weight".into(),
            index: 5
        }
    );
}

#[test]
fn reranker_refuses_bad_files_too() {
    let (bytes, _) = model_file();
    assert!(Reranker::from_bytes(&bytes[..bytes.len() - 7], &Device::flex()).is_err());
    assert!(Reranker::from_bytes(&[], &Device::flex()).is_err());
    assert!(Reranker::from_bytes(&bytes, &Device::flex()).is_ok());
}

#[test]
fn version_4_files_still_load_as_one_foundation_model() {
    let (bytes, config) = model_file();
    let (header, data) = parts(&bytes);
    let loaded = load_model(&assemble_v4(&header, &data), &Device::flex()).unwrap();
    assert_eq!(loaded.config, config);
    let again = save_model(
        &loaded.model,
        &loaded.config,
        loaded.items.ids(),
        Quantization::F32,
    );
    assert_eq!(again, bytes, "a version-4 file holds the same model");
    // What this build writes is a bundle whose one part is the foundation model.
    let file = WeightFile::decode(&bytes).unwrap();
    assert_eq!(
        u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    assert_eq!(file.manifest.parts.len(), 1);
    assert_eq!(file.manifest.parts[0].name, "foundation_model");
}

#[test]
fn aliased_tensors_and_duplicate_parts_are_refused_before_decoding() {
    let (bytes, _) = model_file();
    let (header, data) = parts(&bytes);
    // Every tensor of one size pointing at the same bytes: in bounds, but aliased.
    let mut aliased = header.clone();
    let first = aliased
        .tensors
        .iter()
        .find(|t| t.name == "blocks.0.ff_in.bias")
        .unwrap()
        .clone();
    let twin = aliased
        .tensors
        .iter_mut()
        .find(|t| t.name == "blocks.1.ff_in.bias")
        .unwrap();
    twin.offset = first.offset + 4;
    assert!(matches!(
        err(&assemble(&aliased, &data, FORMAT_VERSION)),
        WeightFileError::OverlappingTensors { first, second }
            if [first.as_str(), second.as_str()].contains(&"blocks.1.ff_in.bias")
    ));
    // Two parts with one name.
    let part = Part {
        name: "foundation_model".into(),
        kind: PartKind::FoundationModel(header.clone()),
    };
    let twice = Manifest {
        parts: vec![part.clone(), part],
    };
    let bytes = assemble_encoded(
        &postcard::to_allocvec(&twice).unwrap(),
        &data,
        FORMAT_VERSION,
    );
    assert_eq!(
        err(&bytes),
        WeightFileError::DuplicatePart("foundation_model".into())
    );
    // No part at all.
    let empty = Manifest { parts: vec![] };
    let bytes = assemble_encoded(&postcard::to_allocvec(&empty).unwrap(), &[], FORMAT_VERSION);
    assert_eq!(
        err(&bytes),
        WeightFileError::MissingPart("foundation model")
    );
}

/// A caller's limit on the decoded weights refuses a model before it is built; every valid file
/// decodes to at most `MAX_DECODED_PER_FILE_BYTE` times its size, whatever its storage.
#[test]
fn decoded_weights_stay_within_the_callers_limit_and_four_times_the_file() {
    use encore_core::weights::{MAX_DECODED_PER_FILE_BYTE, load_model_within};
    let (bytes, config) = model_file();
    let decoded: u64 = expected_tensors(&config)
        .iter()
        .map(|(_, shape)| shape.iter().product::<usize>() as u64 * 4)
        .sum();
    let device = Device::flex();
    assert!(load_model_within(&bytes, &device, decoded).is_ok());
    assert_eq!(
        load_model_within(&bytes, &device, decoded - 1).unwrap_err(),
        WeightFileError::DecodedTooLarge {
            decoded,
            limit: decoded - 1
        }
    );
    let e = Reranker::from_bytes_within(&bytes, &device, 1000).unwrap_err();
    assert!(
        e.to_string().contains("over the caller's limit of 1000"),
        "{e}"
    );
    for q in [Quantization::F32, Quantization::F16, Quantization::Int8] {
        let file = requantize(&bytes, q).unwrap();
        assert!(
            decoded <= MAX_DECODED_PER_FILE_BYTE * file.len() as u64,
            "{q:?}: {decoded} decoded bytes from {} file bytes",
            file.len()
        );
    }
}

/// Every field of two serving descriptions, bit for bit.
fn assert_same_serving(
    a: &encore_core::serving::ServingModel,
    b: &encore_core::serving::ServingModel,
    what: &str,
) {
    assert_eq!(
        (a.d_model, a.n_heads, a.max_len, a.n_items, a.epsilon),
        (b.d_model, b.n_heads, b.max_len, b.n_items, b.epsilon),
        "{what}: shape"
    );
    assert_eq!(a.embedding.table, b.embedding.table, "{what}: token tables");
    assert_eq!(
        a.embedding.offsets, b.embedding.offsets,
        "{what}: table offsets"
    );
    assert_eq!(
        a.embedding.position, b.embedding.position,
        "{what}: positions"
    );
    assert_eq!(
        a.embedding.input_scale, b.embedding.input_scale,
        "{what}: input scale"
    );
    assert_eq!(a.layers.len(), b.layers.len(), "{what}: layers");
    for (l, (x, y)) in a.layers.iter().zip(&b.layers).enumerate() {
        assert_eq!(x.norm_attn, y.norm_attn, "{what}: layer {l} norm_attn");
        assert_eq!(
            x.query_key_value, y.query_key_value,
            "{what}: layer {l} qkv"
        );
        assert_eq!(x.output, y.output, "{what}: layer {l} output");
        assert_eq!(x.norm_ff, y.norm_ff, "{what}: layer {l} norm_ff");
        assert_eq!(x.ff_in, y.ff_in, "{what}: layer {l} ff_in");
        assert_eq!(x.ff_out, y.ff_out, "{what}: layer {l} ff_out");
    }
    assert_eq!(a.mix, b.mix, "{what}: layer mix");
    assert_eq!(a.norm, b.norm, "{what}: final norm");
}

#[test]
fn the_serving_description_read_from_the_weights_equals_the_loaded_models() {
    let (_, base) = model_file();
    for (context_features, scale_embedding) in [(true, true), (false, true), (true, false)] {
        let config = base
            .clone()
            .with_context_features(context_features)
            .with_scale_embedding(scale_embedding);
        let mut model = config.init(&Device::flex());
        // A layer mix that is not one-hot, so that its softmax is exercised.
        model.layer_mix = burn::module::Param::from_tensor(burn::tensor::Tensor::from_data(
            burn::tensor::TensorData::new(vec![0.3f32, -1.2, 0.8], [3]),
            &Device::flex(),
        ));
        let ids: Vec<u32> = (100..130).collect();
        for quantization in [Quantization::F32, Quantization::Int8] {
            let what =
                format!("context {context_features}, scale {scale_embedding}, {quantization:?}");
            let bytes = save_model(&model, &config, &ids, quantization);
            let loaded = load_model(&bytes, &Device::flex()).unwrap();
            let from_model = encore_core::serving::ServingModel::from_model(
                &loaded.model,
                &loaded.model.token_tables(),
            );
            let served = load_serving_within(&bytes, &Device::flex(), u64::MAX).unwrap();
            assert_eq!(served.config, loaded.config, "{what}");
            assert_eq!(served.items.ids(), loaded.items.ids(), "{what}");
            assert_eq!(served.quantization, quantization, "{what}");
            assert_same_serving(&served.model, &from_model, &what);
            // A bad file is refused the same way by both loads.
            let cut = &bytes[..bytes.len() - 9];
            assert_eq!(
                load_serving_within(cut, &Device::flex(), u64::MAX)
                    .unwrap_err()
                    .to_string(),
                err(cut).to_string(),
                "{what}"
            );
        }
    }
}

#[test]
fn a_cpu_reranker_from_bytes_answers_the_burn_calls_as_one_from_the_model() {
    let (bytes, _) = model_file();
    let loaded = load_model(&bytes, &Device::flex()).unwrap();
    let from_bytes = Reranker::from_bytes(&bytes, &Device::flex()).unwrap();
    let from_model = Reranker::new(loaded.model, loaded.config, loaded.items);
    let history: Vec<_> = [100u32, 105, 111, 105]
        .iter()
        .enumerate()
        .map(|(i, &item)| encore_core::Event::implicit(1, item, 1_000 + i as i64 * 3_600))
        .collect();
    let request = encore_core::RerankRequest::on(encore_core::Surface::Home);
    // The CPU engine's rerank, and the calls that run through burn (the model built from the
    // weight file on first use by the reranker loaded from bytes).
    assert_eq!(
        from_bytes
            .rerank(&history, &[101, 102, 129], &request)
            .unwrap(),
        from_model
            .rerank(&history, &[101, 102, 129], &request)
            .unwrap()
    );
    let members = [(history.as_slice(), request.clone())];
    let a = from_bytes.score_catalog(&members).unwrap();
    let b = from_model.score_catalog(&members).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].len(), 30);
    assert_eq!(
        from_bytes.item_vectors().unwrap(),
        from_model.item_vectors().unwrap()
    );
}
