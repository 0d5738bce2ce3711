//! The words the page uses, in the book's language.

use serde::Serialize;

/// UI strings for one language.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    pub lang: &'static str,
    pub exit: &'static str,
    pub expected: &'static str,
    pub timed_out: &'static str,
    pub shell_ended: &'static str,
    pub skipped: &'static str,
    pub failed: &'static str,
    pub omitted: &'static str,
    pub wrote: &'static str,
    pub edited: &'static str,
    pub replaces: &'static str,
    pub no_output: &'static str,
    pub waiting: &'static str,
    pub ready: &'static str,
    pub keeps_running: &'static str,
    pub interrupted: &'static str,
    pub terminal: &'static str,
    pub rendered_page: &'static str,
    pub page_source: &'static str,
    pub not_verified: &'static str,
    pub check_failed: &'static str,
    pub binary: &'static str,
    pub build_step: &'static str,
    pub build_instruction: &'static str,
    pub build_cache: &'static str,
    pub build_seconds: &'static str,
    pub from_cache: &'static str,
    pub rebuilt: &'static str,
    pub base_image: &'static str,
    pub build_failed: &'static str,
    pub not_reported: &'static str,
    pub verified_note: &'static str,
    pub chart_title: &'static str,
    pub chart_time: &'static str,
    pub note: &'static str,
    pub chapter_error: &'static str,
    pub verified: &'static str,
    pub engine: &'static str,
    pub client: &'static str,
    pub stand_ins: &'static str,
    /// In the provenance line: the builders the build outputs show.
    pub builder: &'static str,
    /// In the provenance line: images from outside the chapter.
    pub images: &'static str,
    /// Marks an image that is a stand-in.
    pub stand_in: &'static str,
    /// A build's time, against the first build of the same image.
    pub build_time: &'static str,
    /// How the legacy builder's step times were measured.
    pub by_arrival: &'static str,
    pub of_first_build: &'static str,
    pub line: &'static str,
    pub at_most: &'static str,
    pub steps_ok: &'static str,
    pub steps_skipped: &'static str,
    pub steps_failed: &'static str,
    pub missing_shot: &'static str,
    pub not_run_chapter: &'static str,
    /// A record shown from the store whose step is stale.
    pub stale: &'static str,
    /// In the provenance line: how many records are stale.
    pub stale_steps: &'static str,
    /// The provenance line of a chapter without any record.
    pub never_verified: &'static str,
    /// A step with no valid record.
    pub no_record: &'static str,
    /// In the provenance line: how many steps have no record.
    pub missing_steps: &'static str,
    pub tip: &'static str,
    pub warning: &'static str,
    pub danger: &'static str,
    pub info: &'static str,
    pub details: &'static str,
    pub any_status: &'static str,
    pub nonzero_status: &'static str,
    decimal_comma: bool,
}

const DE: Labels = Labels {
    lang: "de",
    exit: "Exit-Status",
    expected: "erwartet",
    timed_out: "abgebrochen: Zeitlimit überschritten",
    shell_ended: "Shell beendet",
    skipped: "nicht ausgeführt",
    failed: "fehlgeschlagen",
    omitted: "ausgelassene Zeilen",
    wrote: "Datei geschrieben",
    edited: "Änderung übernommen in",
    replaces: "verifizierte Ausgabe anstelle des Screenshots",
    no_output: "(keine Ausgabe)",
    waiting: "wartet auf die nächste Eingabe",
    ready: "bereit:",
    keeps_running: "läuft weiter",
    interrupted: "mit CTRL+C beendet",
    terminal: "Terminal",
    rendered_page: "So zeigt der Browser die Antwort (ohne Skripte)",
    page_source: "Quelltext der Antwort",
    not_verified: "nicht ausgeführt, daher nicht verifiziert",
    check_failed: "Prüfung fehlgeschlagen",
    binary: "Binärdaten",
    build_step: "Schritt",
    build_instruction: "Anweisung",
    build_cache: "Layer",
    build_seconds: "Dauer",
    from_cache: "aus dem Cache",
    rebuilt: "neu gebaut",
    base_image: "Basis-Image",
    build_failed: "fehlgeschlagen",
    not_reported: "vom Builder nicht gemeldet",
    verified_note: "Nachgeprüft",
    chart_title: "Builds im Vergleich",
    chart_time: "Dauer des ganzen Builds",
    note: "Hinweis",
    chapter_error: "Dieses Kapitel konnte nicht ausgeführt werden",
    verified: "Verifiziert am",
    engine: "Docker Engine",
    client: "Client",
    stand_ins: "Stellvertreter-Images (lokal gebaut)",
    builder: "Builder",
    images: "Images",
    stand_in: "Stellvertreter",
    build_time: "Bauzeit",
    by_arrival: "gemessen am Eintreffen der Ausgabe",
    of_first_build: "des ersten Builds",
    line: "Zeile",
    at_most: "verlangt: höchstens",
    steps_ok: "Schritte wie erwartet",
    steps_skipped: "nicht ausgeführt",
    steps_failed: "fehlgeschlagen",
    missing_shot: "Screenshot nicht verfügbar",
    not_run_chapter: "das Kapitel wurde nicht ausgeführt",
    stale: "nicht erneut geprüft: aufgezeichnet bei einem früheren Lauf; seither hat sich dieser Schritt, eine Datei, die er sieht, oder etwas davor geändert",
    stale_steps: "nicht erneut geprüft",
    never_verified: "Nicht geprüft: keine gültige Aufzeichnung",
    no_record: "nicht geprüft: für diesen Schritt gibt es keine gültige Aufzeichnung",
    missing_steps: "ohne Aufzeichnung",
    tip: "Tipp",
    warning: "Achtung",
    danger: "Vorsicht",
    info: "Hinweis",
    details: "Details",
    any_status: "beliebig",
    nonzero_status: "ungleich 0",
    decimal_comma: true,
};

const EN: Labels = Labels {
    lang: "en",
    exit: "exit status",
    expected: "expected",
    timed_out: "stopped: time limit exceeded",
    shell_ended: "shell ended",
    skipped: "not run",
    failed: "failed",
    omitted: "lines omitted",
    wrote: "file written",
    edited: "change applied to",
    replaces: "verified output in place of the screenshot",
    no_output: "(no output)",
    waiting: "waiting for the next input",
    ready: "ready:",
    keeps_running: "keeps running",
    interrupted: "stopped with CTRL+C",
    terminal: "Terminal",
    rendered_page: "The answer as a browser shows it (without scripts)",
    page_source: "Source of the answer",
    not_verified: "not run, so not verified",
    check_failed: "check failed",
    binary: "binary data",
    build_step: "Step",
    build_instruction: "Instruction",
    build_cache: "Layer",
    build_seconds: "Time",
    from_cache: "from the cache",
    rebuilt: "built",
    base_image: "base image",
    build_failed: "failed",
    not_reported: "not reported by the builder",
    verified_note: "Verified",
    chart_title: "Builds compared",
    chart_time: "time of the whole build",
    note: "Note",
    chapter_error: "This chapter could not be run",
    verified: "Verified on",
    engine: "Docker Engine",
    client: "client",
    stand_ins: "stand-in images (built locally)",
    builder: "builder",
    images: "images",
    stand_in: "stand-in",
    build_time: "build time",
    by_arrival: "measured as the output arrived",
    of_first_build: "of the first build",
    line: "line",
    at_most: "claimed: at most",
    steps_ok: "steps as expected",
    steps_skipped: "not run",
    steps_failed: "failed",
    missing_shot: "Screenshot not available",
    not_run_chapter: "the chapter was not run",
    stale: "not re-verified: recorded by an earlier run; this step, a file it sees, or something before it has changed since",
    stale_steps: "not re-verified",
    never_verified: "Not verified: no valid record",
    no_record: "not verified: there is no valid record of this step",
    missing_steps: "without a record",
    tip: "Tip",
    warning: "Warning",
    danger: "Danger",
    info: "Note",
    details: "Details",
    any_status: "any",
    nonzero_status: "non-zero",
    decimal_comma: false,
};

impl Labels {
    /// The labels for a language code such as `de-DE`; English otherwise.
    pub fn for_lang(lang: Option<&str>) -> Labels {
        match lang.map(|l| {
            l.split(['-', '_'])
                .next()
                .unwrap_or("")
                .to_ascii_lowercase()
        }) {
            Some(l) if l == "de" => DE,
            _ => EN,
        }
    }

    /// A number of seconds, in the language's notation.
    pub fn seconds(&self, secs: f64) -> String {
        let s = if secs < 10.0 {
            format!("{secs:.2} s")
        } else {
            format!("{secs:.1} s")
        };
        if self.decimal_comma {
            s.replace('.', ",")
        } else {
            s
        }
    }

    /// A count, with the language's thousands separator.
    pub fn count(&self, n: u64) -> String {
        let digits = n.to_string();
        let sep = if self.decimal_comma { '.' } else { ',' };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_per_language() {
        let de = Labels::for_lang(Some("de-DE"));
        let en = Labels::for_lang(None);
        assert_eq!(de.seconds(0.456), "0,46 s");
        assert_eq!(en.seconds(12.34), "12.3 s");
        assert_eq!(de.count(49_999_820), "49.999.820");
        assert_eq!(en.count(999), "999");
    }
}
