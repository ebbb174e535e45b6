//! First-order DARTS (Liu et al. 2019) over activation cells. Per training batch: one Adam
//! step of the alphas on the next validation batch, then one SGD step of the weights on the
//! training batch (gradient norm clipped). The validation loader is iterated alongside the
//! training loader (restarted only when it runs out), never re-created per step. After every
//! epoch: validation metrics, the argmax formula, `alphas.jsonl`, `errors.json` and a
//! checkpoint; at the end `genotype.json`, and `log.log` ends with the final formula.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;

use super::config::SearchConfig;
use super::record;
use crate::data::{self, DatasetSpec, LoaderConfig, SplitConfig};
use crate::model::init::Init;
use crate::model::state::{host_f32, load_state_dict, state_dict, write_safetensors};
use crate::model::{MixedCell, ResNet};
use crate::observer::{BatchProgress, EpochSummary, Event, Observer};
use crate::space::cell::CellSpace;
use crate::space::genotype::Genotype;
use crate::train::adam::{Adam, AdamConfig};
use crate::train::checkpoint::{self, CheckpointMeta};
use crate::train::history::{History, write_json};
use crate::train::metrics::Meter;
use crate::train::run::{
    RunLog, check_same_run, checkpoint_note, evaluate, prepare_out_dir, to_tensors, trainable_params,
};
use crate::train::schedule::Schedule;
use crate::train::sgd::{Sgd, SgdConfig};
use crate::train::update::Group;

/// A finished search.
#[derive(Clone, Debug)]
pub struct SearchOutcome {
    pub out: PathBuf,
    pub genotype: Genotype,
    pub history: History,
}

pub fn search(config: &SearchConfig, device: &Device, resume: bool, obs: &dyn Observer) -> Result<SearchOutcome> {
    if config.method != "darts" {
        bail!("unknown one-shot method '{}': this build implements darts", config.method);
    }
    if !(config.train_portion > 0.0 && config.train_portion < 1.0) {
        bail!("--train-portion must be in (0, 1) for a search: the rest of the training set trains the alphas");
    }
    let space = CellSpace::parse(&config.space)?;
    let out = &config.out;
    let resuming = prepare_out_dir(out, resume)?;
    let mut log = RunLog::open(&out.join("log.log"), obs)?;

    let split = SplitConfig {
        train_portion: config.train_portion,
        subset: config.subset,
        test_subset: Some(1),
        seed: config.seed,
    };
    let splits = data::load_splits(&DatasetSpec::parse(&config.dataset)?, &config.data_dir, &split, obs)?;
    let train_set = Arc::new(splits.train);
    let valid_set = Arc::new(splits.valid.expect("train portion < 1 leaves a validation split"));

    let train_device = device.clone().autodiff();
    let mut alpha_init = Init::new(config.seed ^ 0xa1fa);
    let mut model = ResNet::with_sites(config.network, splits.num_classes, config.seed, &train_device, |channels| {
        let alphas = space.positions().iter().map(|p| alpha_init.normal(p.ops.len(), 1e-3)).collect();
        MixedCell::new(&space, channels, alphas, &train_device)
    });
    let mut sgd = Sgd::new(SgdConfig {
        momentum: config.momentum,
        nesterov: false,
        weight_decay: config.weight_decay,
        grad_clip: Some(config.grad_clip),
        group: Group::Weights,
    });
    let mut adam = Adam::new(AdamConfig {
        betas: config.arch_betas,
        eps: 1e-8,
        weight_decay: config.arch_weight_decay,
        group: Group::Arch,
    });
    let mut history = History {
        seed: config.seed,
        network: config.network.name().to_string(),
        dataset: config.dataset.clone(),
        activation: format!("{} cell ({})", space.name, config.method),
        params: trainable_params(&model),
        ..History::default()
    };
    let (mut start_epoch, mut batches_tracked) = (0, 0i64);
    if resuming {
        let (tensors, meta) = checkpoint::load::<SearchConfig>(out)?;
        check_same_run(&meta.config, config)?;
        model = load_state_dict(model, &tensors)?;
        sgd.load_state(&tensors, device);
        adam.load_state(&tensors, meta.arch_steps, device);
        (start_epoch, batches_tracked, history) = (meta.epoch, meta.batches_tracked, meta.history);
        record::truncate_alphas(&out.join("alphas.jsonl"), start_epoch)?;
        log.line(&format!("resumed from the checkpoint of epoch {start_epoch}"))?;
    } else {
        write_json(&out.join("config.json"), config)?;
        log.line(&format!(
            "searching the {} space with {} on {} {} ({} train / {} valid images), seed {}",
            space.name,
            config.method,
            config.dataset,
            config.network.name(),
            train_set.len(),
            valid_set.len(),
            config.seed
        ))?;
    }

    let started = Instant::now();
    let time_before = history.runtime.last().copied().unwrap_or(0.0);
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let loader = |set: &Arc<data::ImageSet>, epoch: usize, salt: u64| {
        data::batches(
            set.clone(),
            splits.norm,
            LoaderConfig {
                batch_size: config.batch_size,
                shuffle: true,
                augment: config.augment,
                drop_last: false,
                seed: config.seed ^ salt,
                epoch: epoch as u64,
            },
        )
    };
    let mut genotype = None;
    for epoch in start_epoch..config.epochs {
        let lr = Schedule::Cosine.lr_with_floor(config.lr, config.lr_min, epoch, config.epochs);
        let train_batches = loader(&train_set, epoch, 0);
        let batches = train_batches.len();
        let mut valid_batches = loader(&valid_set, epoch, 0x5a1d);
        let mut restarts = 0;
        let mut meter = Meter::default();
        let epoch_start = Instant::now();
        for (index, batch) in train_batches.enumerate() {
            // Architecture step on the next validation batch.
            let valid_batch = match valid_batches.next() {
                Some(b) => b,
                None => {
                    restarts += 1;
                    valid_batches = loader(&valid_set, epoch + 1000 * restarts, 0x5a1d);
                    valid_batches.next().expect("the validation split is not empty")
                }
            };
            let (images, labels) = to_tensors(&valid_batch, &train_device);
            let arch_loss = loss_fn.forward(model.forward(images), labels);
            let arch_value = arch_loss.clone().into_scalar::<f32>() as f64;
            guard(arch_value, "validation (architecture)", epoch, index, out)?;
            model = adam.step(model, arch_loss.backward(), config.arch_lr);

            // Weight step on the training batch.
            let (images, labels) = to_tensors(&batch, &train_device);
            let logits = model.forward(images);
            let loss = loss_fn.forward(logits.clone(), labels);
            let value = loss.clone().into_scalar::<f32>() as f64;
            guard(value, "training", epoch, index, out)?;
            meter.add(&host_f32(logits.inner()), &batch.labels, value);
            model = sgd.step(model, loss.backward(), lr);
            batches_tracked += 1;
            obs.event(Event::Batch(BatchProgress {
                epoch: epoch + 1,
                epochs: config.epochs,
                batch: index + 1,
                batches,
                loss: meter.loss(),
                acc: meter.acc(),
                images_per_sec: 2.0 * meter.count as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                images: batch.size,
            }));
            if obs.should_stop() {
                bail!(
                    "stopped in epoch {} batch {}; the last checkpoint in {} is kept: rerun with --resume to continue",
                    epoch + 1,
                    index + 1,
                    out.display()
                );
            }
        }
        let train_time = epoch_start.elapsed().as_secs_f64();
        let valid = evaluate(&model.valid(), &valid_set, splits.norm, 500, device);
        if !valid.loss().is_finite() {
            bail!(
                "the search diverged: after epoch {} the validation loss is {}; {}; lower --lr or --arch-lr",
                epoch + 1,
                valid.loss(),
                checkpoint_note(epoch, out)
            );
        }
        let weights = record::site_weights(&model);
        let current = record::genotype(&space, &model, &weights)?;
        record::append_alphas(&out.join("alphas.jsonl"), epoch + 1, &current.formula, &space, &weights)?;

        let runtime = time_before + started.elapsed().as_secs_f64();
        history.push_epoch(&meter, Some(&valid), None, train_time, runtime, lr);
        history.formula.push(current.formula.clone());
        history.write(&out.join("errors.json"))?;

        let mut tensors = state_dict(&model, batches_tracked);
        tensors.extend(sgd.state());
        tensors.extend(adam.state());
        let meta = CheckpointMeta {
            epoch: epoch + 1,
            batches_tracked,
            history: history.clone(),
            config: config.clone(),
            arch_steps: adam.steps,
        };
        checkpoint::save(out, &tensors, &meta)?;

        let line = format!(
            "epoch {}/{} | lr {:.5} | train loss {:.4} acc {:.2}% | valid loss {:.4} acc {:.2}% | {} | {:.1}s",
            epoch + 1,
            config.epochs,
            lr,
            meter.loss(),
            meter.acc(),
            valid.loss(),
            valid.acc(),
            current.formula,
            train_time
        );
        log.write(&line)?;
        obs.event(Event::Epoch(EpochSummary { epoch: epoch + 1, epochs: config.epochs, line }));
        genotype = Some(current);
    }
    let genotype = match genotype {
        Some(g) => g,
        None => record::genotype(&space, &model, &record::site_weights(&model))?,
    };
    genotype.save(&out.join("genotype.json"))?;
    let metadata = std::collections::HashMap::from([
        ("space".to_string(), space.name.clone()),
        ("network".to_string(), config.network.name().to_string()),
        ("formula".to_string(), genotype.formula.clone()),
    ]);
    write_safetensors(&out.join("model.safetensors"), &state_dict(&model, batches_tracked), metadata)?;
    log.line(&format!("final formula: {}", genotype.formula))?;
    Ok(SearchOutcome { out: out.clone(), genotype, history })
}

/// Stop with a clear message (keeping the last checkpoint) when a loss is not finite.
fn guard(loss: f64, which: &str, epoch: usize, index: usize, out: &std::path::Path) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "the search diverged: the {which} loss became {loss} in epoch {} batch {}; {}; lower --lr or --arch-lr",
            epoch + 1,
            index + 1,
            checkpoint_note(epoch, out)
        );
    }
    Ok(())
}
