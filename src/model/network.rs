//! The networks `--network` names, what each is built as (the CIFAR ResNets by depth
//! (`resnet`), the Vision Transformers (`vit`), the character GPTs (`gpt`), the translation
//! encoder-decoders (`seq2seq`)), and the task each serves: image classification, character
//! language modelling or translation.

use anyhow::{Result, bail};

use super::gpt::GptSize;
use super::seq2seq::Seq2SeqSize;
use super::vit::{Mlp, VitSize};
use crate::space::genotype::SiteLayout;

/// Every network `--network` names: the CIFAR ResNets by depth, the ViTs (`model::vit`) and the
/// character GPTs (`model::gpt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    Resnet8,
    Resnet20,
    Resnet32,
    Resnet44,
    Resnet56,
    Resnet110,
    #[serde(rename = "vit-micro")]
    VitMicro,
    #[serde(rename = "vit-tiny")]
    VitTiny,
    #[serde(rename = "gpt-micro")]
    GptMicro,
    #[serde(rename = "gpt-mini")]
    GptMini,
    #[serde(rename = "transformer-micro")]
    TransformerMicro,
    #[serde(rename = "transformer-small")]
    TransformerSmall,
}

/// What a network learns from, and what it is judged by (DESIGN.md, "Tasks beyond CIFAR
/// ResNets").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Task {
    /// Classes of images: test accuracy in percent, higher is better.
    Image,
    /// The next character of a text: validation loss in nats per character, lower is better.
    Language,
    /// Sentences of one language into another: test BLEU, higher is better.
    Translation,
}

impl Task {
    /// The errors.json array a finished run of this task is judged by.
    pub fn metric(self) -> &'static str {
        match self {
            Task::Image => "test_acc",
            Task::Language => "valid_loss",
            Task::Translation => "test_bleu",
        }
    }

    /// What the task's data is, for errors that name it.
    pub fn data(self) -> &'static str {
        match self {
            Task::Image => "an image dataset (cifar10, cifar100, an image folder or an archive of one)",
            Task::Language => "a UTF-8 text file (e.g. ../shared/data/tinyshakespeare/input.txt)",
            Task::Translation => {
                "a folder of parallel train.L, val.L and test_*.L files (e.g. ../shared/data/multi30k)"
            }
        }
    }
}

/// What a network is built as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// A CIFAR ResNet-(6n+2) with n blocks per stage.
    ResNet {
        blocks_per_stage: usize,
    },
    Vit(VitSize),
    Gpt(GptSize),
    Seq2Seq(Seq2SeqSize),
}

impl Network {
    pub const ALL: [Network; 12] = [
        Network::Resnet8,
        Network::Resnet20,
        Network::Resnet32,
        Network::Resnet44,
        Network::Resnet56,
        Network::Resnet110,
        Network::VitMicro,
        Network::VitTiny,
        Network::GptMicro,
        Network::GptMini,
        Network::TransformerMicro,
        Network::TransformerSmall,
    ];

    pub fn parse(name: &str) -> Result<Network> {
        for n in Network::ALL {
            if n.name() == name.to_ascii_lowercase() {
                return Ok(n);
            }
        }
        bail!(
            "unknown network '{name}': use one of resnet8, resnet20, resnet32, resnet44, resnet56, resnet110, vit-micro, vit-tiny, gpt-micro, gpt-mini, transformer-micro, transformer-small"
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Network::Resnet8 => "resnet8",
            Network::Resnet20 => "resnet20",
            Network::Resnet32 => "resnet32",
            Network::Resnet44 => "resnet44",
            Network::Resnet56 => "resnet56",
            Network::Resnet110 => "resnet110",
            Network::VitMicro => "vit-micro",
            Network::VitTiny => "vit-tiny",
            Network::GptMicro => "gpt-micro",
            Network::GptMini => "gpt-mini",
            Network::TransformerMicro => "transformer-micro",
            Network::TransformerSmall => "transformer-small",
        }
    }

    pub fn arch(self) -> Arch {
        let resnet = |n| Arch::ResNet { blocks_per_stage: n };
        match self {
            Network::Resnet8 => resnet(1),
            Network::Resnet20 => resnet(3),
            Network::Resnet32 => resnet(5),
            Network::Resnet44 => resnet(7),
            Network::Resnet56 => resnet(9),
            Network::Resnet110 => resnet(18),
            Network::VitMicro => Arch::Vit(VitSize::VitMicro),
            Network::VitTiny => Arch::Vit(VitSize::VitTiny),
            Network::GptMicro => Arch::Gpt(GptSize::GptMicro),
            Network::GptMini => Arch::Gpt(GptSize::GptMini),
            Network::TransformerMicro => Arch::Seq2Seq(Seq2SeqSize::TransformerMicro),
            Network::TransformerSmall => Arch::Seq2Seq(Seq2SeqSize::TransformerSmall),
        }
    }

    /// The task this network serves.
    pub fn task(self) -> Task {
        match self.arch() {
            Arch::ResNet { .. } | Arch::Vit(_) => Task::Image,
            Arch::Gpt(_) => Task::Language,
            Arch::Seq2Seq(_) => Task::Translation,
        }
    }

    /// Where the sites' per-unit parameters lie: per channel in a ResNet, per feature of the
    /// last axis in a transformer's MLPs.
    pub fn site_layout(self) -> SiteLayout {
        match self.arch() {
            Arch::ResNet { .. } => SiteLayout::Channels,
            Arch::Vit(_) | Arch::Gpt(_) | Arch::Seq2Seq(_) => SiteLayout::Features,
        }
    }

    /// The activation this network is usually trained with: ReLU for a ResNet, GELU for a
    /// transformer (the warm start's function and the comparisons' default baseline).
    pub fn usual_activation(self) -> &'static str {
        match self.arch() {
            Arch::ResNet { .. } => "relu",
            Arch::Vit(_) | Arch::Gpt(_) | Arch::Seq2Seq(_) => "gelu",
        }
    }

    /// Whether this is a CIFAR ResNet.
    pub fn is_resnet(self) -> bool {
        matches!(self.arch(), Arch::ResNet { .. })
    }

    /// Width of each activation site, in forward order: a ResNet's channels (stem, then
    /// act1/act2 per block), a transformer's MLP hidden width per block (`mlp` sets it).
    pub fn site_widths(self, mlp: Mlp) -> Vec<usize> {
        match self.arch() {
            Arch::ResNet { blocks_per_stage: n } => {
                let mut sites = vec![16];
                for c in [16, 32, 64] {
                    for _ in 0..n {
                        sites.extend([c, c]);
                    }
                }
                sites
            }
            Arch::Vit(size) => {
                let shape = size.shape();
                vec![mlp.width(shape.hidden); shape.layers]
            }
            Arch::Gpt(size) => {
                let shape = size.shape();
                vec![mlp.width(shape.hidden); shape.layers]
            }
            // The encoder's blocks, then the decoder's.
            Arch::Seq2Seq(size) => {
                let shape = size.shape();
                vec![mlp.width(shape.hidden); 2 * shape.layers]
            }
        }
    }

    /// The ResNet's blocks per stage (depth = 6n + 2); an error names the network otherwise.
    pub fn blocks_per_stage(self) -> Result<usize> {
        match self.arch() {
            Arch::ResNet { blocks_per_stage } => Ok(blocks_per_stage),
            Arch::Vit(_) | Arch::Gpt(_) | Arch::Seq2Seq(_) => bail!("{} is not a CIFAR ResNet", self.name()),
        }
    }
}
