//! One eval run from scratch (or resumed), for every task: data → model → optimizer steps
//! through the shared driver (`train::driver`), by epochs or by a step budget → evaluation of
//! the held-out splits → `errors.json`, `log.log`, a checkpoint at every evaluation and
//! `model.safetensors` at the end. An image run is scored on its validation and test splits;
//! a language model on its validation text, and it writes `samples.txt` at the end; a
//! translation model on its validation loss, then once at the end on the BLEU of its
//! translations of the validation and test splits (`translations.txt`). The per-step strategy
//! is `train::steps`'.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use burn::module::Module;
use burn::prelude::*;

use super::batches::ImageBatches;
use super::config::{Optimizer, TrainConfig, adamw_betas, warmed_lr};
use super::driver::{self, Batches, Diverged, Job, Span, Trained};
use super::history::History;
use super::optimizer::{AdamW, Optim};
use super::run_dir::{DIVERGED_FILE, MODEL_FILE, RunDir, RunLog, Start};
use super::schedule::{LrRule, Per};
use super::sgd::{Sgd, SgdConfig};
use super::steps::{ImageSplits, Supervised, WeightSteps, trainable_params};
use super::text::{TextBatches, TextSplits};
use super::translate::{PairBatches, Prepared, TranslationSplits, open_corpus, score_bleu};
use super::update::Group;
use crate::data::parallel::ParallelCorpus;
use crate::data::plan::Plan;
use crate::data::text::CharCorpus;
use crate::data::{self, ImageSet, Normalization};
use crate::expr::Formula;
use crate::model::state::write_safetensors;
use crate::model::{Activation, Arch, Gpt, Net, ResNet, Seq2Seq, Vit};
use crate::observer::{Event, Observer};
use crate::space::resolve::site_values;

/// What a finished run reports back.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub out: PathBuf,
    pub history: History,
}

impl RunOutcome {
    /// The final value of the metric the run is judged by (`History::metric`): the test
    /// accuracy of an image run, the validation loss of a language model.
    pub fn headline(&self) -> f64 {
        self.history.headline().unwrap_or(f64::NAN)
    }
}

/// The samples a language model writes at the end: this many characters, from its first
/// vocabulary character, at temperature 1, with this seed.
pub const SAMPLE_CHARS: usize = 500;
pub const SAMPLE_SEED: u64 = 1337;
pub const SAMPLES_FILE: &str = "samples.txt";
/// A translation run's test sources, references and hypotheses.
pub const TRANSLATIONS_FILE: &str = "translations.txt";
/// A translation run's copy of its BPE vocabulary (HuggingFace's format).
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where a run's data comes from, checked before its folder is written.
enum Source {
    Images(data::DatasetSpec),
    Text(Arc<CharCorpus>),
    Parallel(Box<ParallelCorpus>),
}

/// Reads the data of `config` as a run would, without training: an image dataset is fetched,
/// checked and decoded into the data dir's cache, a text file read as a corpus. A grid calls it
/// once, so that bad data fails before any run starts.
pub fn check_data(config: &TrainConfig, obs: &dyn Observer) -> Result<()> {
    match source(config)? {
        Source::Text(_) | Source::Parallel(_) => Ok(()),
        Source::Images(spec) => data::load_splits(&spec, &config.data_dir, &config.split(), obs).map(|_| ()),
    }
}

/// The data `config` names, for its network's task; the error names the fix.
fn source(config: &TrainConfig) -> Result<Source> {
    Ok(match config.network.arch() {
        Arch::Gpt(size) => Source::Text(Arc::new(CharCorpus::open(&config.dataset, size)?)),
        Arch::Seq2Seq(_) => Source::Parallel(Box::new(open_corpus(
            &config.dataset,
            config.network.name(),
            config.translation.as_ref(),
        )?)),
        Arch::ResNet { .. } | Arch::Vit(_) => Source::Images(data::DatasetSpec::parse(&config.dataset)?),
    })
}

/// Train `formula` as configured. `device` is the plain (non-autodiff) device.
pub fn train(
    config: &TrainConfig,
    formula: &Formula,
    device: &Device,
    resume: bool,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let out = &config.out;
    // A dataset that cannot be read fails before the run folder exists.
    let source = source(config)?;
    // A translation run records the languages and test split it read.
    let mut settled = config.clone();
    if let (Source::Parallel(corpus), Some(t)) = (&source, settled.translation.as_mut()) {
        (t.source, t.target, t.test_set) = (corpus.source.clone(), corpus.target.clone(), corpus.test_name.clone());
    }
    let config = &settled;
    let (_dir, start) = RunDir::open(out, config, resume)?;
    if start == Start::Finished {
        obs.event(Event::Info(format!("{} holds this run, finished; its results are kept as they are", out.display())));
        return Ok(RunOutcome { out: out.clone(), history: History::read(&out.join("errors.json"))? });
    }
    let mut log = RunLog::open(&out.join("log.log"), obs)?;
    // What an earlier attempt left: this one writes its own if it diverges.
    let _ = std::fs::remove_file(out.join(DIVERGED_FILE));
    if start == Start::Restart {
        log.line("resuming: the run stopped before its first checkpoint, so it starts again from the beginning")?;
    }
    let resuming = start == Start::Resume;
    let outcome = match source {
        Source::Images(spec) => train_images(config, formula, &spec, device, resuming, &mut log, obs),
        Source::Text(corpus) => train_text(config, formula, corpus, device, resuming, &mut log, obs),
        Source::Parallel(corpus) => train_translation(config, formula, &corpus, device, resuming, &mut log, obs),
    };
    outcome.map_err(|e| diverged(out, e))
}

/// The activation sites of a network built on `train_device`: `site_values` gives one entry
/// per site of the network's widths, in the order the network builds them.
fn sites<'a>(
    config: &TrainConfig,
    formula: &'a Formula,
    train_device: &'a Device,
) -> Result<impl FnMut(usize) -> Activation + 'a> {
    let widths = config.network.site_widths(config.mlp);
    let values = site_values(&config.activation_spec, formula, config.init_params, &widths)?;
    let mut built = 0;
    Ok(move |_: usize| {
        built += 1;
        Activation::with_values(formula, &values[built - 1], train_device)
    })
}

/// An image run: the splits, the network, then [`train_net`].
fn train_images(
    config: &TrainConfig,
    formula: &Formula,
    spec: &data::DatasetSpec,
    device: &Device,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let splits = data::load_splits(spec, &config.data_dir, &config.split(), obs)?;
    let mut settled = config.clone();
    splits.settle(&mut settled.subset, &mut settled.test_subset, &mut settled.requested);
    let config = &settled;
    let data::Splits { train, valid, test, norm, num_classes, classes, .. } = splits;
    let train_device = device.clone().autodiff();
    let site = sites(config, formula, &train_device)?;
    let data = Data { train: Arc::new(train), valid: valid.map(Arc::new), test: Arc::new(test), norm, classes };
    let intro = format!(
        "training {} with activation {} on {} ({} train / {} valid / {} test images), seed {}",
        config.network.name(),
        config.activation,
        config.dataset,
        data.train.len(),
        data.valid.as_ref().map_or(0, |v| v.len()),
        data.test.len(),
        config.seed
    );
    let metadata = BTreeMap::from([
        ("activation".to_string(), config.activation.clone()),
        ("network".to_string(), config.network.name().to_string()),
        ("num_classes".to_string(), data.classes.len().to_string()),
        ("classes".to_string(), serde_json::to_string(&data.classes)?),
        // Inputs are (pixel/255 - mean) / std per channel, with these training-split statistics.
        ("normalize_mean".to_string(), serde_json::to_string(&data.norm.mean)?),
        ("normalize_std".to_string(), serde_json::to_string(&data.norm.std)?),
    ]);
    let batches = ImageBatches {
        set: data.train.clone(),
        norm: data.norm,
        batch_size: config.batch_size,
        augment: config.augment,
        seed: config.seed,
    };
    let splits = ImageSplits {
        valid: data.valid.clone(),
        test: Some(data.test.clone()),
        norm: data.norm,
        eval_batch: config.eval_batch_size,
        device: device.clone(),
    };
    let task = TaskRun { batches, splits, intro, metadata };
    let history = match config.network.arch() {
        Arch::Vit(size) => {
            let model = Vit::with_sites(size, config.mlp, num_classes, config.seed, &train_device, site);
            write_image_plan(config, &model, &data, resuming)?;
            train_net(config, model, task, device, resuming, log, obs, |_, _, _| Ok(()))?
        }
        _ => {
            let model = ResNet::with_sites(config.network, num_classes, config.seed, &train_device, site)?;
            write_image_plan(config, &model, &data, resuming)?;
            train_net(config, model, task, device, resuming, log, obs, |_, _, _| Ok(()))?
        }
    };
    log.line(&format!(
        "finished: final test accuracy {:.2}% ({})",
        history.test_acc.last().copied().unwrap_or(f64::NAN),
        config.activation
    ))?;
    Ok(RunOutcome { out: config.out.clone(), history })
}

/// A language model's run: the corpus's windows, the GPT, [`train_net`], then
/// [`SAMPLES_FILE`] from the final model.
fn train_text(
    config: &TrainConfig,
    formula: &Formula,
    corpus: Arc<CharCorpus>,
    device: &Device,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let Arch::Gpt(size) = config.network.arch() else {
        anyhow::bail!("{} is not a language model", config.network.name())
    };
    let len = size.shape().block;
    let train_device = device.clone().autodiff();
    let site = sites(config, formula, &train_device)?;
    let model = Gpt::with_sites(size, config.mlp, corpus.vocab_size(), config.seed, &train_device, site)
        .with_dropout(config.dropout);
    if config.write_plan && !resuming {
        let steps = config.steps.unwrap_or(0);
        data::plan::write_text_plan(
            &config.out.join("plan.safetensors"),
            &corpus,
            config.batch_size,
            len,
            config.seed,
            steps,
        )?;
        write_safetensors(&config.out.join("init.safetensors"), &model.state_dict(0), Default::default())?;
    }
    let intro = format!(
        "training {} with activation {} on {} ({} characters, {} train / {} valid, vocabulary {}), seed {}",
        config.network.name(),
        config.activation,
        config.dataset,
        corpus.train.len() + corpus.valid.len(),
        corpus.train.len(),
        corpus.valid.len(),
        corpus.vocab_size(),
        config.seed
    );
    let metadata = BTreeMap::from([
        ("activation".to_string(), config.activation.clone()),
        ("network".to_string(), config.network.name().to_string()),
        // The id of a character is its index in this string.
        ("vocabulary".to_string(), corpus.vocab.iter().collect::<String>()),
    ]);
    let batches = TextBatches { corpus: corpus.clone(), rows: config.batch_size, len, seed: config.seed };
    let splits = TextSplits { corpus: corpus.clone(), len, eval_rows: config.eval_batch_size, device: device.clone() };
    let task = TaskRun { batches, splits, intro, metadata };
    let history = train_net(config, model, task, device, resuming, log, obs, |model, _, _| {
        let samples = model.valid().generate(&[0], SAMPLE_CHARS, 1.0, SAMPLE_SEED);
        let text = format!("{}{}", corpus.decode(&[0]), corpus.decode(&samples));
        crate::files::write_atomic(&config.out.join(SAMPLES_FILE), text.as_bytes())
    })?;
    let loss = history.valid_loss.last().copied().unwrap_or(f64::NAN);
    log.line(&format!(
        "finished: validation loss {loss:.4} ({:.4} bits per character) ({}); {SAMPLE_CHARS} generated characters in {SAMPLES_FILE}",
        loss / std::f64::consts::LN_2,
        config.activation
    ))?;
    Ok(RunOutcome { out: config.out.clone(), history })
}

/// `e`, having written [`DIVERGED_FILE`] into `out` when it is a divergence.
fn diverged(out: &Path, e: anyhow::Error) -> anyhow::Error {
    if let Some(d) = e.downcast_ref::<Diverged>() {
        let note = serde_json::json!({ "what": d.what, "advice": d.advice });
        if let Err(w) = crate::files::write_atomic(&out.join(DIVERGED_FILE), note.to_string().as_bytes()) {
            return w.context(format!("{e:#}"));
        }
    }
    e
}

/// With `--write-plan`, a fresh image run's data in training order (`plan.safetensors`) and
/// its initial weights (`init.safetensors`), for a twin in another framework.
fn write_image_plan<N: Net>(config: &TrainConfig, model: &N, data: &Data, resuming: bool) -> Result<()> {
    if !config.write_plan || resuming {
        return Ok(());
    }
    let plan = Plan {
        train: &data.train,
        test: &data.test,
        norm: data.norm,
        seed: config.seed,
        epochs: config.epochs,
        augment: config.augment,
    };
    data::plan::write_plan(&config.out.join("plan.safetensors"), &plan)?;
    write_safetensors(&config.out.join("init.safetensors"), &model.state_dict(0), Default::default())
}

/// The splits of one image run, their normalization and class names.
struct Data {
    train: Arc<ImageSet>,
    valid: Option<Arc<ImageSet>>,
    test: Arc<ImageSet>,
    norm: Normalization,
    classes: Vec<String>,
}

/// What [`train_net`] needs of a task: its training batches, its held-out splits, the log's
/// first line and `model.safetensors`' metadata.
struct TaskRun<B, D> {
    batches: B,
    splits: D,
    intro: String,
    metadata: BTreeMap<String, String>,
}

/// The steps of `config` on `model` through the driver, then `finish` (what the task does
/// with the trained model: samples, BLEU) before `errors.json` is written again and
/// `model.safetensors`, which marks the run finished, so a run stopped in `finish` does it
/// again on resume; the history.
#[allow(clippy::too_many_arguments)]
fn train_net<N, B, D>(
    config: &TrainConfig,
    model: N,
    task: TaskRun<B, D>,
    device: &Device,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
    finish: impl FnOnce(&N, &mut History, &mut RunLog) -> Result<()>,
) -> Result<History>
where
    N: Net,
    D: Supervised<N>,
    B: Batches<Batch = D::Batch>,
{
    let out = &config.out;
    let TaskRun { batches, splits, intro, metadata } = task;
    let params = trainable_params(&model);
    let metric = config.network.task().metric();
    let history = History::new(config.seed, config.network.name(), &config.dataset, &config.activation, params, metric);
    let span = match config.steps {
        Some(steps) => Span::Steps { steps, eval_interval: config.eval_interval.unwrap_or(steps.div_ceil(10)) },
        None => Span::Epochs(config.epochs),
    };
    let job = Job { out, config, span, train: &batches, write_config: true, intro };
    let steps = config.steps.unwrap_or(config.epochs * batches.len(false));
    let (optim, lr) = match config.optimizer {
        Optimizer::Sgd => {
            let sgd = Sgd::new(SgdConfig {
                momentum: config.momentum,
                nesterov: config.nesterov,
                weight_decay: config.weight_decay,
                grad_clip: config.grad_clip,
                group: Group::All,
            });
            let (per, total) = match config.steps {
                Some(steps) => (Per::Step, steps),
                None => (Per::Epoch, config.epochs),
            };
            let lr = LrRule { schedule: config.schedule, base: config.lr, per, total, warmup: 0, floor: 0.0 };
            (Optim::Sgd(sgd), lr)
        }
        Optimizer::Adamw => {
            let recipe = AdamW {
                betas: adamw_betas(config.network),
                weight_decay: config.weight_decay,
                grad_clip: config.grad_clip,
                group: Group::All,
            };
            let optim = recipe.build(&model);
            (optim, warmed_lr(config.network, config.schedule, config.lr, steps, config.warmup))
        }
    };
    let mut strategy = WeightSteps::<N, TrainConfig, D> {
        optim,
        lr,
        data: splits,
        seed: config.seed,
        device: device.clone(),
        hint: match config.optimizer {
            Optimizer::Sgd => "lower --lr (the seed preset uses 0.025), add --grad-clip 5 or use a bounded activation",
            Optimizer::Adamw => "lower --lr or use a bounded activation",
        },
        types: PhantomData,
    };
    let Trained { model, mut history, batches_tracked, .. } =
        driver::run(&job, model, history, &mut strategy, resuming, log, obs)?;
    finish(&model, &mut history, log)?;
    history.write(&out.join("errors.json"))?;
    write_safetensors(&out.join(MODEL_FILE), &model.state_dict(batches_tracked), metadata)?;
    Ok(history)
}

/// A translation run: the vocabulary (learned or cached), the encoded pairs, the
/// encoder-decoder, [`train_net`], then the BLEU of the validation and test translations,
/// [`TRANSLATIONS_FILE`] and three examples in the log.
fn train_translation(
    config: &TrainConfig,
    formula: &Formula,
    corpus: &ParallelCorpus,
    device: &Device,
    resuming: bool,
    log: &mut RunLog,
    obs: &dyn Observer,
) -> Result<RunOutcome> {
    let (Arch::Seq2Seq(size), Some(t)) = (config.network.arch(), config.translation.as_ref()) else {
        anyhow::bail!("{} is not a translation model", config.network.name())
    };
    obs.event(Event::Info(format!("reading the vocabulary of {} tokens for {}", t.vocab_size, corpus.name)));
    let Prepared { vocab, learned, train, valid, test } = Prepared::of(corpus, t.vocab_size, &config.data_dir)?;
    let tokenizer = std::fs::read(&vocab.path)?;
    crate::files::write_atomic(&config.out.join(TOKENIZER_FILE), &tokenizer)?;
    let train_device = device.clone().autodiff();
    let site = sites(config, formula, &train_device)?;
    let v = vocab.size();
    let model = Seq2Seq::with_sites(size, config.mlp, v, v, config.dropout, config.seed, &train_device, site);
    let batches = PairBatches { pairs: Arc::new(train), rows: config.batch_size, seed: config.seed };
    if config.write_plan && !resuming {
        let pairs = &batches.pairs;
        let rows = batches.plan(config.steps.unwrap_or(0));
        data::plan::write_pairs_plan(&config.out.join("plan.safetensors"), &pairs.source, &pairs.target, &rows)?;
        write_safetensors(&config.out.join("init.safetensors"), &model.state_dict(0), Default::default())?;
    }
    let train = &batches.pairs;
    let s = &corpus.skipped;
    let intro = format!(
        "training {} with activation {} on {} {}→{} ({} train / {} valid / {} {} pairs; {} pairs with an empty side skipped, {} sides cut to 256 tokens; vocabulary of {v} BPE tokens{}), seed {}",
        config.network.name(),
        config.activation,
        config.dataset,
        corpus.source,
        corpus.target,
        train.len(),
        valid.len(),
        test.len(),
        corpus.test_name,
        s.train + s.valid + s.test,
        train.cut + valid.cut + test.cut,
        if learned { ", learned now" } else { ", cached" },
        config.seed
    );
    let metadata = BTreeMap::from([
        ("activation".to_string(), config.activation.clone()),
        ("network".to_string(), config.network.name().to_string()),
        ("source".to_string(), corpus.source.clone()),
        ("target".to_string(), corpus.target.clone()),
        ("tokenizer".to_string(), TOKENIZER_FILE.to_string()),
    ]);
    let splits = TranslationSplits {
        valid: Arc::new(valid.clone()),
        eval_rows: config.eval_batch_size.min(256),
        label_smoothing: t.label_smoothing,
        device: device.clone(),
    };
    let task = TaskRun { batches, splits, intro, metadata };
    let beam = t.beam;
    let history = train_net(config, model, task, device, resuming, log, obs, |model, history, log| {
        let model = model.valid();
        let mut scored = Vec::new();
        for (split, encoded, pairs) in [("validation", &valid, &corpus.valid), ("test", &test, &corpus.test)] {
            let mut progress = |done: usize, total: usize| {
                obs.event(Event::Info(format!("translating the {split} split: {done} of {total} sentences")))
            };
            let translated = score_bleu(&model, encoded, &pairs.target, &vocab, 64, beam, &mut progress)?;
            log.line(&format!(
                "{split} BLEU {:.2} ({} sentences, {}; sacreBLEU 13a, {} hypothesis / {} reference tokens)",
                translated.bleu.score,
                encoded.len(),
                if beam > 1 { format!("beam {beam}") } else { "greedy".to_string() },
                translated.bleu.sys_len,
                translated.bleu.ref_len
            ))?;
            scored.push(translated);
        }
        history.valid_bleu = vec![scored[0].bleu.score];
        history.test_bleu = vec![scored[1].bleu.score];
        let mut text = String::new();
        for (i, hyp) in scored[1].hypotheses.iter().enumerate() {
            text += &format!(
                "source: {}
reference: {}
hypothesis: {hyp}

",
                corpus.test.source[i], corpus.test.target[i]
            );
        }
        crate::files::write_atomic(&config.out.join(TRANSLATIONS_FILE), text.as_bytes())?;
        for i in 0..scored[1].hypotheses.len().min(3) {
            log.line(&format!(
                "example {}: {} → {} (reference: {})",
                i + 1,
                corpus.test.source[i],
                scored[1].hypotheses[i],
                corpus.test.target[i]
            ))?;
        }
        Ok(())
    })?;
    log.line(&format!(
        "finished: test BLEU {:.2}, validation BLEU {:.2} ({}); translations in {TRANSLATIONS_FILE}",
        history.test_bleu.last().copied().unwrap_or(f64::NAN),
        history.valid_bleu.last().copied().unwrap_or(f64::NAN),
        config.activation
    ))?;
    Ok(RunOutcome { out: config.out.clone(), history })
}
