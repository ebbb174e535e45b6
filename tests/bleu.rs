//! `train::bleu` against Python sacreBLEU (`sacrebleu.corpus_bleu(hyps, [refs])`, its defaults):
//! seeded random corpora full of punctuation, entities, numbers, unicode, odd white space and
//! empty lines, and fixed corpora, compared on the whole result and on every line's tokenization.

mod common;

use std::process::Command;

use actsearch::train::bleu::{Bleu, corpus_bleu, tokenize_13a};
use serde_json::{Value, json};

/// Reads the corpora from `argv[1]` and prints, for each, sacreBLEU's result and the `13a`
/// tokenization of its hypotheses then references.
const SACREBLEU: &str = r#"
import json, sys
import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
tok = Tokenizer13a()
results = []
for case in json.load(open(sys.argv[1], encoding='utf-8')):
    hyps, refs = case['hyps'], case['refs']
    b = sacrebleu.corpus_bleu(hyps, [refs])
    results.append({'score': b.score, 'counts': b.counts, 'totals': b.totals, 'precisions': b.precisions,
                    'bp': b.bp, 'sys_len': b.sys_len, 'ref_len': b.ref_len,
                    'tokens': [tok(line) for line in hyps + refs]})
print(json.dumps({'version': sacrebleu.__version__, 'results': results}))
"#;

/// A 64-bit linear congruential generator (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// True with probability `percent` / 100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Words: plain, capitalized (BLEU is case-sensitive), numbers, punctuation, entities, unicode.
const WORDS: &[&str] = &[
    "the",
    "The",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "barked",
    "at",
    "night",
    "it",
    "is",
    "was",
    "and",
    "of",
    "to",
    "in",
    "world",
    "history",
    "book",
    "read",
    "Party",
    "party",
    "guide",
    "action",
    "it's",
    "don't",
    "well-known",
    "e-mail",
    "3,000.50",
    "1990-2000",
    "5-4",
    "42",
    "3.5%",
    "$5.00",
    "1,2.3",
    "U.S.A.",
    "i.e.",
    "e.g.",
    ".",
    ",",
    "!",
    "?",
    ";",
    ":",
    "--",
    "-",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "/",
    "@",
    "#",
    "*",
    "&",
    "<",
    ">",
    "=",
    "~",
    "^",
    "_",
    "`",
    "|",
    "...",
    "&amp;",
    "&quot;",
    "&lt;",
    "&gt;",
    "&quot;hi&quot;",
    "&amp;lt;",
    "a&lt;b",
    "<skipped>",
    "Größe",
    "Straße",
    "über",
    "groß",
    "café",
    "élégant",
    "n'est-ce",
    "pas",
    "très",
    "我爱北京天安门",
    "。",
    "天安门",
    "🦀",
    "❤️",
    "«",
    "»",
    "—",
    "–",
    "…",
    "Ünïcödé",
    "x.5",
    ".5",
    "5.",
    "9.-1",
];

/// What goes between two words: mostly a space, sometimes nothing (gluing punctuation on),
/// newlines (`-\n` joins), and white space that only Python's `str.split` knows or none does.
const SEPARATORS: &[&str] =
    &[" ", " ", " ", " ", " ", " ", "", "", "\n", "-\n", "\t", "  ", "\u{a0}", "\u{1c}", "\u{3000}", "\u{200b}"];

/// Line endings: nothing, or trailing white space (which sacreBLEU strips before tokenizing).
const ENDINGS: &[&str] = &["", "", "", "", " ", "\n", "-\n", " \t", "\u{1f}", "-"];

fn sentence(rng: &mut Lcg, words: &[&str]) -> String {
    let mut line = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            line.push_str(rng.pick(SEPARATORS));
        }
        line.push_str(word);
    }
    line.push_str(rng.pick(ENDINGS));
    line
}

/// A corpus of `n` hypothesis/reference pairs: references are random sentences, hypotheses
/// mostly edited copies of them (kept, replaced, dropped and inserted words), some unrelated,
/// some empty.
fn random_corpus(rng: &mut Lcg, n: usize) -> (Vec<String>, Vec<String>) {
    let (mut hyps, mut refs) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let len = if rng.chance(5) { 0 } else { 1 + rng.below(20) };
        let reference: Vec<&str> = (0..len).map(|_| rng.pick(WORDS)).collect();
        let hypothesis: Vec<&str> = if rng.chance(10) {
            Vec::new()
        } else if rng.chance(10) {
            (0..rng.below(20)).map(|_| rng.pick(WORDS)).collect()
        } else {
            let mut h = Vec::new();
            for &w in &reference {
                match rng.below(100) {
                    0..75 => h.push(w),
                    75..87 => h.push(rng.pick(WORDS)),
                    87..95 => {}
                    _ => h.extend([w, rng.pick(WORDS)]),
                }
            }
            h
        };
        hyps.push(sentence(rng, &hypothesis));
        refs.push(sentence(rng, &reference));
    }
    (hyps, refs)
}

/// The fixed corpora of the unit tests, and more.
fn fixed_corpora() -> Vec<(Vec<String>, Vec<String>)> {
    let corpus = |hyps: &[&str], refs: &[&str]| {
        (hyps.iter().map(|s| s.to_string()).collect(), refs.iter().map(|s| s.to_string()).collect())
    };
    // Every character Python's `str.isspace` knows, and some it does not, between two words.
    let spaces: Vec<String> = [
        '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}', ' ', '\u{85}', '\u{a0}',
        '\u{1680}', '\u{2000}', '\u{2005}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
        '\u{180e}', '\u{200b}', '\u{feff}', '\u{0}', '\u{7f}',
    ]
    .iter()
    .map(|c| format!("a{c}b.{c}"))
    .collect();
    let spaces: Vec<&str> = spaces.iter().map(|s| s.as_str()).collect();
    vec![
        corpus(
            &[
                "The cat sat on the mat.",
                "It is a guide to action which ensures that the military always obeys the commands of the party.",
                "He read the book because he was interested in world history.",
            ],
            &[
                "The cat is sitting on the mat.",
                "It is a guide to action that ensures that the military will forever heed Party commands.",
                "He was interested in world history because he read the book.",
            ],
        ),
        corpus(
            &[
                "He said &quot;hello&quot; &amp; left.",
                "It costs $3,000.50 (approx.), i.e. 3.5% more!",
                "A well-known 1990-2000 trend -- or so they say; 5-4=1?",
                "Don't stop: a<b & c>d, x/y {z} [w] ~ ^ _ ` | @ # *",
            ],
            &[
                "He said \"hello\" & left .",
                "It costs $3,000.50 (approx.), e.g. 3.5% more.",
                "A well-known 1990 - 2000 trend - or so they said; 5-4 = 1 ?",
                "Don't stop: a&lt;b &amp; c&gt;d, x/y {z} [w] ~ ^ _ ` | @ # *",
            ],
        ),
        corpus(
            &[
                "Die Größe der Straße ist übermäßig groß.",
                "Le café est très élégant, n'est-ce pas ?",
                "我爱北京天安门。天安门上太阳升。",
                "I ❤️ Rust 🦀, and Ünïcödé «quotes» — dashes…",
            ],
            &[
                "Die Größe der Strasse ist übermäßig groß!",
                "Le café était très élégant, n'est-ce pas?",
                "我爱北京天安门。 天安门上太阳升。",
                "I ❤️ Rust 🦀 and Ünïcödé «quotes» – dashes...",
            ],
        ),
        corpus(
            &["the quick brown fox jumps over the lazy dog today", "a b c d e f g"],
            &["the quick brown fox jumps over the dog", "a b c d e"],
        ),
        corpus(
            &["the quick brown fox jumps", "jumps over the lazy fox"],
            &["the quick brown fox jumps over", "the lazy dog jumps over the lazy fox"],
        ),
        corpus(
            &["the cat sat on the mat", "", "a dog barked loudly at night"],
            &["the cat sat on the mat", "nothing here at all", "the dog barked loudly at night"],
        ),
        corpus(&["", "", " "], &["one two", "three", "four five six"]),
        corpus(&["", ""], &["", ""]),
        corpus(&["a b"], &[""]),
        corpus(&["Hello, world!", "A perfect match, really."], &["Hello, world!", "A perfect match, really."]),
        corpus(&["a b c x a b c y", "p q r s"], &["a b c d e f g h", "p q r t"]),
        corpus(&["a b x c d y e f"], &["a b c d e f"]),
        corpus(&["a b c", "d e"], &["a b c", "d e f"]),
        corpus(&["x y z w"], &["a b c d"]),
        corpus(
            &["hyph-\nenated word<skipped> and\nnewline", "ends with dash-\n", "sep\u{1c}arated\u{a0}words\u{3000} \t"],
            &["hyphenated word and newline", "ends with dash-", "sep arated words"],
        ),
        corpus(
            &["<skip<skipped>ped> &amp;quot; &amp;amp;", "9.-1,'a' .5 5. x.5"],
            &["< skipped > &quot; &amp;", "9 . -1"],
        ),
        corpus(&spaces, &spaces),
    ]
}

/// Asserts that ours matches sacreBLEU's result `theirs` on `hyps` and `refs`.
fn assert_matches(case: &str, hyps: &[String], refs: &[String], theirs: &Value, version: &str) {
    let ours: Bleu = corpus_bleu(hyps, refs).unwrap();
    let at = |key: &str| theirs[key].clone();
    let floats = |v: Value| -> Vec<f64> { v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect() };
    let ints =
        |v: Value| -> Vec<usize> { v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect() };
    let context = format!("{case}: ours {ours:?}, sacreBLEU {version}'s {theirs}, hyps {hyps:?}, refs {refs:?}");
    assert!((ours.score - at("score").as_f64().unwrap()).abs() <= 1e-9, "score: {context}");
    assert!((ours.bp - at("bp").as_f64().unwrap()).abs() <= 1e-12, "bp: {context}");
    for (a, b) in ours.precisions.iter().zip(floats(at("precisions"))) {
        assert!((a - b).abs() <= 1e-9, "precisions: {context}");
    }
    assert_eq!(ours.counts.to_vec(), ints(at("counts")), "counts: {context}");
    assert_eq!(ours.totals.to_vec(), ints(at("totals")), "totals: {context}");
    assert_eq!(ours.sys_len as u64, at("sys_len").as_u64().unwrap(), "sys_len: {context}");
    assert_eq!(ours.ref_len as u64, at("ref_len").as_u64().unwrap(), "ref_len: {context}");
    let tokens = at("tokens");
    for (line, theirs) in hyps.iter().chain(refs).zip(tokens.as_array().unwrap()) {
        assert_eq!(tokenize_13a(line), theirs.as_str().unwrap(), "{case}: tokenizing {line:?} (sacreBLEU {version})");
    }
}

#[test]
fn bleu_matches_sacrebleu() {
    let Some(python) = common::python_with("bleu", &["sacrebleu"]) else { return };
    let mut corpora: Vec<(String, Vec<String>, Vec<String>)> = fixed_corpora()
        .into_iter()
        .enumerate()
        .map(|(i, (hyps, refs))| (format!("fixed corpus {i}"), hyps, refs))
        .collect();
    for seed in 0..40u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9e3779b97f4a7c15) ^ 0x5eed);
        let n = if seed == 0 { 1000 } else { 1 + rng.below(40) };
        let (hyps, refs) = random_corpus(&mut rng, n);
        corpora.push((format!("random corpus of seed {seed}"), hyps, refs));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corpora.json");
    let cases: Vec<Value> = corpora.iter().map(|(_, h, r)| json!({ "hyps": h, "refs": r })).collect();
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let out = Command::new(&python).arg("-c").arg(SACREBLEU).arg(&file).output().unwrap();
    assert!(out.status.success(), "sacreBLEU failed: {}", String::from_utf8_lossy(&out.stderr));
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = answer["version"].as_str().unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), corpora.len());
    for ((case, hyps, refs), theirs) in corpora.iter().zip(results) {
        assert_matches(case, hyps, refs, theirs, version);
    }
}
