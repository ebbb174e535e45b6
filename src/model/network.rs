//! The networks `--network` names, and what each is built as: the CIFAR ResNets by depth
//! (`resnet`) and the Vision Transformers (`vit`).

use anyhow::{Result, bail};

use super::vit::{Mlp, VitSize};
use crate::space::genotype::SiteLayout;

/// Every network `--network` names: the CIFAR ResNets by depth and the ViTs (`model::vit`).
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
}

/// What a network is built as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// A CIFAR ResNet-(6n+2) with n blocks per stage.
    ResNet {
        blocks_per_stage: usize,
    },
    Vit(VitSize),
}

impl Network {
    pub const ALL: [Network; 8] = [
        Network::Resnet8,
        Network::Resnet20,
        Network::Resnet32,
        Network::Resnet44,
        Network::Resnet56,
        Network::Resnet110,
        Network::VitMicro,
        Network::VitTiny,
    ];

    pub fn parse(name: &str) -> Result<Network> {
        for n in Network::ALL {
            if n.name() == name.to_ascii_lowercase() {
                return Ok(n);
            }
        }
        bail!(
            "unknown network '{name}': use one of resnet8, resnet20, resnet32, resnet44, resnet56, resnet110, vit-micro, vit-tiny"
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
        }
    }

    /// Where the sites' per-unit parameters lie: per channel in a ResNet, per feature of the
    /// last axis in a transformer's MLPs.
    pub fn site_layout(self) -> SiteLayout {
        match self.arch() {
            Arch::ResNet { .. } => SiteLayout::Channels,
            Arch::Vit(_) => SiteLayout::Features,
        }
    }

    /// The activation this network is usually trained with: ReLU for a ResNet, GELU for a
    /// transformer (the warm start's function and the comparisons' default baseline).
    pub fn usual_activation(self) -> &'static str {
        match self.arch() {
            Arch::ResNet { .. } => "relu",
            Arch::Vit(_) => "gelu",
        }
    }

    /// Whether this is a CIFAR ResNet.
    pub fn is_resnet(self) -> bool {
        matches!(self.arch(), Arch::ResNet { .. })
    }

    /// Width of each activation site, in forward order: a ResNet's channels (stem, then
    /// act1/act2 per block), a ViT's MLP hidden width per block (`mlp` sets it).
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
        }
    }

    /// The ResNet's blocks per stage (depth = 6n + 2); an error names the network otherwise.
    pub fn blocks_per_stage(self) -> Result<usize> {
        match self.arch() {
            Arch::ResNet { blocks_per_stage } => Ok(blocks_per_stage),
            Arch::Vit(_) => bail!("{} is not a CIFAR ResNet", self.name()),
        }
    }
}
