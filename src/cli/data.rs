//! `actsearch data fetch`: download, verify (size + MD5) and extract the CIFAR archives.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use super::progress::Progress;
use super::stdout;
use crate::data::{self, CifarKind};

#[derive(Args, Debug)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Download the official binary archive, check its size and MD5, and extract it.
    Fetch {
        /// Which dataset.
        #[arg(value_enum)]
        dataset: DatasetArg,
        /// Where to put the archive and the extracted files.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DatasetArg {
    Cifar10,
    Cifar100,
}

pub fn run(args: DataArgs) -> Result<()> {
    match args.command {
        DataCommand::Fetch { dataset, data_dir } => {
            let kind = match dataset {
                DatasetArg::Cifar10 => CifarKind::Cifar10,
                DatasetArg::Cifar100 => CifarKind::Cifar100,
            };
            let progress = Progress::new();
            data::fetch(kind, &data_dir, &progress)?;
            let (train, test) = data::load_cifar(kind, &data_dir, &progress)?;
            progress.finish();
            stdout(&format!(
                "{} ready in {}: {} training and {} test images\n",
                kind.title(),
                data_dir.display(),
                train.len(),
                test.len()
            ))
        }
    }
}
