//! Corpus BLEU exactly as sacreBLEU computes it by default
//! (`sacrebleu.corpus_bleu(hypotheses, [references])`, one reference per sentence): the `13a`
//! tokenizer of mteval-v13a, case-sensitive, n-grams of 1 to 4 words with clipped counts, the
//! brevity penalty, and sacreBLEU's default `exp` smoothing, on sacreBLEU's 0-100 scale. Checked
//! against sacreBLEU 2.6.0 (the unit tests hold its numbers; `tests/bleu.rs` runs it).
//!
//! Where sacreBLEU is loose this module is strict: it fails on an empty corpus (sacreBLEU raises
//! an `IndexError`) and on hypotheses and references of different lengths (sacreBLEU's `zip`
//! silently drops the extra lines).

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde::Serialize;

/// The highest n-gram order (sacreBLEU's `MAX_NGRAM_ORDER`).
const MAX_ORDER: usize = 4;

/// What sacreBLEU's `my_log` returns for `log(0)`.
const LOG_ZERO: f64 = -9999999999.0;

/// A corpus BLEU score and its statistics, as sacreBLEU's `BLEUScore` holds them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bleu {
    /// BLEU on the 0-100 scale.
    pub score: f64,
    /// Matched (clipped) n-grams of each order 1..=4, summed over the corpus.
    pub counts: [usize; 4],
    /// Hypothesis n-grams of each order 1..=4, summed over the corpus.
    pub totals: [usize; 4],
    /// The n-gram precisions in percent, `exp`-smoothed where nothing matched; 0 for an order
    /// with no hypothesis n-grams (and those after it), and all 0 when nothing matched at all.
    pub precisions: [f64; 4],
    /// The brevity penalty: 1 when the hypotheses are at least as long as the references, else
    /// `exp(1 - ref_len / sys_len)`, and 0 when the hypotheses are all empty.
    pub bp: f64,
    /// Tokens in the hypotheses.
    pub sys_len: usize,
    /// Tokens in the references.
    pub ref_len: usize,
}

/// Python's `str.isspace` (what `str.split()` and `str.rstrip()` split and strip on): Unicode
/// white space plus the separators U+001C..U+001F, which Rust's `char::is_whitespace` leaves out.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The characters of 13a's first regex, `[\{-\~\[-\` -\&\(-\+\:-\@\/]`, each padded with spaces:
/// ASCII punctuation and symbols except `'`, `,`, `-` and `.` (and the space itself).
fn is_13a_symbol(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Python's `re.sub` for a pattern of two one-character groups: scanning left to right, each
/// non-overlapping pair `(a, b)` with `matches(a, b)` is replaced by `replace(a, b)`.
fn sub_pairs(
    chars: &[char],
    matches: impl Fn(char, char) -> bool,
    replace: impl Fn(char, char) -> [char; 4],
) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && matches(chars[i], chars[i + 1]) {
            out.extend(replace(chars[i], chars[i + 1]));
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// sacreBLEU's `13a` tokenizer (`Tokenizer13a()(line)`, mteval-v13a's tokenization): removes
/// `<skipped>`, joins lines broken after a hyphen (`-\n`), turns other newlines into spaces,
/// unescapes `&quot;`, `&amp;`, `&lt;` and `&gt;` (in that order, once each), splits off ASCII
/// punctuation other than `'`, `,`, `-` and `.`, splits off `.` and `,` unless they sit between
/// digits (so `3,000.50` stays whole), splits off `-` after a digit, and joins the tokens with
/// single spaces (splitting on Python's white space). Unlike [`corpus_bleu`], it does not strip trailing white space first.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    // `re.sub(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])', r' \1 ', f' {line} ')`
    let mut chars = Vec::with_capacity(line.len() * 2 + 2);
    for c in std::iter::once(' ').chain(line.chars()).chain(std::iter::once(' ')) {
        if is_13a_symbol(c) {
            chars.extend([' ', c, ' ']);
        } else {
            chars.push(c);
        }
    }
    let digit = |c: char| c.is_ascii_digit();
    let period_comma = |c: char| c == '.' || c == ',';
    // `([^0-9])([\.,])` -> `\1 \2 `: period and comma unless preceded by a digit.
    let chars = sub_pairs(&chars, |a, b| !digit(a) && period_comma(b), |a, b| [a, ' ', b, ' ']);
    // `([\.,])([^0-9])` -> ` \1 \2`: period and comma unless followed by a digit.
    let chars = sub_pairs(&chars, |a, b| period_comma(a) && !digit(b), |a, b| [' ', a, ' ', b]);
    // `([0-9])(-)` -> `\1 \2 `: a dash after a digit.
    let chars = sub_pairs(&chars, |a, b| digit(a) && b == '-', |a, b| [a, ' ', b, ' ']);
    // `' '.join(line.split())`
    let line: String = chars.into_iter().collect();
    line.split(is_python_space).filter(|t| !t.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The n-grams of orders 1..=4 of `tokens`, counted.
fn ngram_counts<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_ORDER {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

/// Corpus BLEU of `hypotheses` against `references` (one reference per hypothesis), exactly as
/// sacreBLEU's default `corpus_bleu(hypotheses, [references])`: each line has its trailing white
/// space stripped and goes through [`tokenize_13a`], case is kept, and n-gram matches are clipped
/// by the reference's counts. An n-gram order with no match gets `exp` smoothing's precision
/// `100 / (2^k · total)` (k counting the orders so far with no match); the score is 0 when no
/// n-gram matches at all or when the hypotheses hold no 4-gram.
///
/// Fails when the two slices differ in length, or are empty.
pub fn corpus_bleu(hypotheses: &[impl AsRef<str>], references: &[impl AsRef<str>]) -> Result<Bleu> {
    if hypotheses.len() != references.len() {
        bail!(
            "BLEU needs one reference per hypothesis, but got {} hypotheses and {} references",
            hypotheses.len(),
            references.len()
        );
    }
    if hypotheses.is_empty() {
        bail!("BLEU of an empty corpus: no hypotheses and no references");
    }
    let (mut counts, mut totals, mut sys_len, mut ref_len) = ([0; MAX_ORDER], [0; MAX_ORDER], 0, 0);
    for (hypothesis, reference) in hypotheses.iter().zip(references) {
        let hypothesis = tokenize_13a(hypothesis.as_ref().trim_end_matches(is_python_space));
        let reference = tokenize_13a(reference.as_ref().trim_end_matches(is_python_space));
        let hypothesis: Vec<&str> = hypothesis.split(' ').filter(|t| !t.is_empty()).collect();
        let reference: Vec<&str> = reference.split(' ').filter(|t| !t.is_empty()).collect();
        sys_len += hypothesis.len();
        ref_len += reference.len();
        let reference_counts = ngram_counts(&reference);
        for (gram, count) in ngram_counts(&hypothesis) {
            totals[gram.len() - 1] += count;
            counts[gram.len() - 1] += count.min(reference_counts.get(gram).copied().unwrap_or(0));
        }
    }
    Ok(score(counts, totals, sys_len, ref_len))
}

/// sacreBLEU's `BLEU.compute_bleu` with `smooth_method='exp'` and no effective order.
fn score(counts: [usize; 4], totals: [usize; 4], sys_len: usize, ref_len: usize) -> Bleu {
    let bp = if sys_len >= ref_len {
        1.0
    } else if sys_len > 0 {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    } else {
        0.0
    };
    let mut precisions = [0.0; MAX_ORDER];
    let bleu = |score, precisions| Bleu { score, counts, totals, precisions, bp, sys_len, ref_len };
    if counts.iter().all(|&c| c == 0) {
        return bleu(0.0, precisions);
    }
    let mut smooth = 1.0;
    for n in 0..MAX_ORDER {
        if totals[n] == 0 {
            break;
        }
        precisions[n] = if counts[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * totals[n] as f64)
        } else {
            100.0 * counts[n] as f64 / totals[n] as f64
        };
    }
    let log_sum = precisions.iter().map(|&p| if p == 0.0 { LOG_ZERO } else { p.ln() }).fold(0.0, |a, b| a + b);
    bleu(bp * (log_sum / MAX_ORDER as f64).exp(), precisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts our BLEU of `hyps` against `refs` is sacreBLEU's `(score, counts, totals,
    /// sys_len, ref_len)`.
    fn check(hyps: &[&str], refs: &[&str], expected: (f64, [usize; 4], [usize; 4], usize, usize)) {
        let bleu = corpus_bleu(hyps, refs).unwrap();
        let (score, counts, totals, sys_len, ref_len) = expected;
        assert!((bleu.score - score).abs() <= 1e-9, "score {} != sacreBLEU's {score}: {bleu:?}", bleu.score);
        assert_eq!((bleu.counts, bleu.totals, bleu.sys_len, bleu.ref_len), (counts, totals, sys_len, ref_len));
    }

    // Expected values from sacreBLEU 2.6.0 (`sacrebleu.corpus_bleu(hyps, [refs])`).
    /// A normal multi-sentence corpus.
    #[test]
    fn multi_sentence_corpus() {
        check(
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
            (44.38013624242087, [30, 19, 12, 7], [38, 35, 32, 29], 38, 37),
        );
    }

    /// Quotes, entities, numbers with commas and periods, hyphens and dashes.
    #[test]
    fn punctuation_entities_numbers_and_dashes() {
        check(
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
            (84.1600507317581, [67, 59, 51, 44], [71, 67, 63, 59], 71, 71),
        );
    }

    /// German umlauts and ß, accented French, CJK characters, emoji.
    #[test]
    fn unicode() {
        check(
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
            (41.2958532406251, [21, 15, 9, 4], [28, 24, 21, 18], 28, 31),
        );
    }

    /// Hypotheses longer than the references: no brevity penalty.
    #[test]
    fn hypotheses_longer_than_references() {
        check(
            &["the quick brown fox jumps over the lazy dog today", "a b c d e f g"],
            &["the quick brown fox jumps over the dog", "a b c d e"],
            (64.31719459025052, [13, 10, 8, 6], [17, 15, 13, 11], 17, 13),
        );
    }

    /// Hypotheses shorter than the references: a brevity penalty.
    #[test]
    fn hypotheses_shorter_than_references() {
        check(
            &["the quick brown fox jumps", "jumps over the lazy fox"],
            &["the quick brown fox jumps over", "the lazy dog jumps over the lazy fox"],
            (67.03200460356396, [10, 8, 6, 4], [10, 8, 6, 4], 10, 14),
        );
    }

    /// An empty hypothesis among others.
    #[test]
    fn an_empty_hypothesis() {
        check(
            &["the cat sat on the mat", "", "a dog barked loudly at night"],
            &["the cat sat on the mat", "nothing here at all", "the dog barked loudly at night"],
            (63.10377807359926, [11, 9, 7, 5], [12, 10, 8, 6], 12, 16),
        );
    }

    /// All hypotheses empty (one only whitespace): score 0, brevity penalty 0.
    #[test]
    fn all_hypotheses_empty() {
        check(&["", "", " "], &["one two", "three", "four five six"], (0.0, [0, 0, 0, 0], [0, 0, 0, 0], 0, 6));
    }

    /// A perfect match scores 100.
    #[test]
    fn perfect_match() {
        check(
            &["Hello, world!", "A perfect match, really."],
            &["Hello, world!", "A perfect match, really."],
            (100.00000000000004, [10, 8, 6, 4], [10, 8, 6, 4], 10, 10),
        );
    }

    /// No 4-gram matches: `exp` smoothing gives that precision 100 / (2 · total).
    #[test]
    fn no_matching_four_gram() {
        check(
            &["a b c x a b c y", "p q r s"],
            &["a b c d e f g h", "p q r t"],
            (25.40663740773074, [6, 4, 2, 0], [12, 10, 8, 6], 12, 12),
        );
    }

    /// Neither 3- nor 4-grams match: `exp` halves again, 100 / (2 · total) then 100 / (4 · total).
    #[test]
    fn no_matching_three_or_four_gram() {
        check(&["a b x c d y e f"], &["a b c d e f"], (19.130147081392227, [6, 3, 0, 0], [8, 7, 6, 5], 8, 6));
    }

    /// Sentences under 4 tokens: no 4-grams, so the score is 0 despite matches.
    #[test]
    fn no_four_grams_at_all() {
        check(&["a b c", "d e"], &["a b c", "d e f"], (0.0, [5, 3, 1, 0], [5, 3, 1, 0], 5, 6));
    }

    /// Nothing matches: score 0, precisions 0.
    #[test]
    fn no_matches_at_all() {
        check(&["x y z w"], &["a b c d"], (0.0, [0, 0, 0, 0], [4, 3, 2, 1], 4, 4));
    }

    /// `-\n` joins, `\n` splits, `<skipped>` goes, and trailing whitespace is stripped before tokenizing (so a final `-\n` stays a dash).
    #[test]
    fn newlines_skipped_and_trailing_whitespace() {
        check(
            &["hyph-\nenated word<skipped> and\nnewline", "ends with dash-\n", "sep\u{1c}arated\u{a0}words\u{3000} \t"],
            &["hyphenated word and newline", "ends with dash-", "sep arated words"],
            (100.00000000000004, [10, 7, 4, 1], [10, 7, 4, 1], 10, 10),
        );
    }

    /// sacreBLEU's `Tokenizer13a()(line)` on each line.
    const TOKENIZED: &[(&str, &str)] = &[
        ("", ""),
        ("   ", ""),
        ("3,000.50", "3,000.50"),
        ("1,2.3", "1,2.3"),
        ("a.b,c", "a . b , c"),
        ("U.S.A.", "U . S . A ."),
        ("...", ". . ."),
        (",,,", ", , ,"),
        ("5-4", "5 - 4"),
        ("a-b", "a-b"),
        ("-5", "-5"),
        ("x.5", "x . 5"),
        (".5", ". 5"),
        ("5.", "5 ."),
        ("&amp;lt;", "<"),
        ("&quot;quoted&quot;", "\" quoted \""),
        ("it's", "it's"),
        ("e-mail@example.com", "e-mail @ example . com"),
        ("http://example.com/path?q=1&r=2", "http : / / example . com / path ? q = 1 & r = 2"),
        ("tab\there", "tab here"),
        ("&lt;skipped&gt;", "< skipped >"),
        ("<skip<skipped>ped>", "< skipped >"),
        ("hyph-\nen", "hyphen"),
        ("line\nbreak", "line break"),
        ("trailing-\n", "trailing"),
        ("Größe, Straße.", "Größe , Straße ."),
        ("天安门。", "天安门。"),
        ("🦀,🦀.", "🦀 , 🦀 ."),
        ("(x)[y]{z}", "( x ) [ y ] { z }"),
        ("a\u{1c}b\u{1f}c", "a b c"),
        ("9.-1,'a'", "9 . -1 , 'a'"),
        ("\"Hi,\" she said.", "\" Hi , \" she said ."),
    ];

    #[test]
    fn tokenize_13a_matches_sacrebleu() {
        for &(line, expected) in TOKENIZED {
            assert_eq!(tokenize_13a(line), expected, "tokenizing {line:?}");
        }
    }

    #[test]
    fn exp_smoothing_precisions() {
        // 4-gram precision 100 / (2 · 6); 3- and 4-gram ones 100 / (2 · 6), 100 / (4 · 5).
        let bleu = corpus_bleu(&["a b c x a b c y", "p q r s"], &["a b c d e f g h", "p q r t"]).unwrap();
        assert_eq!(bleu.precisions, [50.0, 40.0, 25.0, 100.0 / 12.0]);
        let bleu = corpus_bleu(&["a b x c d y e f"], &["a b c d e f"]).unwrap();
        assert_eq!(bleu.precisions, [75.0, 300.0 / 7.0, 100.0 / 12.0, 100.0 / 20.0]);
        // No 4-grams in the hypotheses: that precision stays 0, and so does the score.
        let bleu = corpus_bleu(&["a b c"], &["a b c"]).unwrap();
        assert_eq!((bleu.precisions, bleu.score), ([100.0, 100.0, 100.0, 0.0], 0.0));
    }

    #[test]
    fn brevity_penalty() {
        let bleu = corpus_bleu(&["the quick brown fox jumps"], &["the quick brown fox jumps over"]).unwrap();
        assert_eq!(bleu.bp, (1.0f64 - 6.0 / 5.0).exp());
        assert_eq!(corpus_bleu(&["a b c d e f"], &["a b c d e"]).unwrap().bp, 1.0);
        assert_eq!(corpus_bleu(&["", ""], &["a b", "c"]).unwrap().bp, 0.0);
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let error = corpus_bleu(&["a", "b", "c"], &["a", "b"]).unwrap_err().to_string();
        assert!(error.contains("3 hypotheses") && error.contains("2 references"), "{error}");
    }

    #[test]
    fn an_empty_corpus_is_an_error() {
        let none: [&str; 0] = [];
        assert!(corpus_bleu(&none, &none).is_err());
    }

    #[test]
    fn takes_strings_too() {
        let hyps = vec!["a b c d".to_string()];
        let refs = [String::from("a b c d")];
        assert_eq!(corpus_bleu(&hyps, &refs).unwrap().counts, [4, 3, 2, 1]);
    }
}
