//! The `.ino` step of an Arduino build, as arduino-cli does it: the main
//! `.ino` first, then the sketch's other `.ino` files in name order, joined
//! into one C++ file that starts with `#include <Arduino.h>`, each part
//! behind a `#line 1 "its file"` so the compiler's messages point into the
//! user's own files; then a prototype for every top-level function that has
//! none, inserted just before the first function definition (so `setup()`
//! may call `MQTT_connect()` defined below it), each prototype behind a
//! `#line` naming the definition it was taken from.
//!
//! arduino-cli finds the functions with ctags over the preprocessed file;
//! here a small C++ scanner reads the source as written. It knows comments,
//! string and character literals (raw strings too), preprocessor lines and
//! `#if 0` blocks, and braces: only definitions at file scope get
//! prototypes, never those inside a class, struct, namespace or
//! `extern "C"` block. Like arduino-cli it leaves out functions that are
//! already declared, templates, and functions with default arguments
//! (repeating a default argument is an error), and keeps `static` and
//! `inline`.

use std::path::{Path, PathBuf};

/// One `.ino` file of a sketch and its text.
#[derive(Clone, Debug)]
pub struct InoFile {
    pub path: PathBuf,
    pub text: String,
}

/// A function definition found at file scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    /// Which `.ino` (index into the files given) and its 1-based line.
    pub file: usize,
    pub line: usize,
    pub name: String,
    /// The declaration, e.g. `static void on_ack(uint16_t pid);`.
    pub prototype: String,
}

/// Joins the sketch's `.ino` files (main first, then the others in the order
/// given) into the translation unit the compiler sees.
pub fn merge(files: &[InoFile]) -> String {
    let (first, protos) = functions(files);
    let mut out = String::from("#include <Arduino.h>\n");
    for (i, f) in files.iter().enumerate() {
        let quoted = quote(&f.path);
        out.push_str(&format!("#line 1 {quoted}\n"));
        let insert_at = match first {
            Some((fi, line)) if fi == i && !protos.is_empty() => Some(line),
            _ => None,
        };
        for (n, line) in f.text.split_inclusive('\n').enumerate() {
            if insert_at == Some(n + 1) {
                for p in &protos {
                    out.push_str(&format!(
                        "#line {} {}\n{}\n",
                        p.line,
                        quote(&files[p.file].path),
                        p.prototype
                    ));
                }
                out.push_str(&format!("#line {} {quoted}\n", n + 1));
            }
            out.push_str(line);
        }
        if !f.text.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// The prototypes [`merge`] adds, in order.
pub fn prototypes(files: &[InoFile]) -> Vec<Function> {
    functions(files).1
}

/// Where the first function definition is (file, line), and the functions
/// to declare there.
fn functions(files: &[InoFile]) -> (Option<(usize, usize)>, Vec<Function>) {
    // Each file is scanned on its own, so an unclosed comment in one cannot
    // swallow the next.
    let scans: Vec<Scan> = files.iter().map(|f| scan(&f.text)).collect();
    let first = scans
        .iter()
        .enumerate()
        .find_map(|(i, s)| s.definitions.first().map(|d| (i, d.line)));
    let declared: Vec<&(String, String)> = scans.iter().flat_map(|s| &s.declarations).collect();
    let mut protos: Vec<Function> = Vec::new();
    for (i, s) in scans.iter().enumerate() {
        for d in &s.definitions {
            let known = declared
                .iter()
                .any(|(n, k)| *n == d.name && *k == d.params_key);
            if d.skip || known || protos.iter().any(|p| p.prototype == d.prototype) {
                continue;
            }
            protos.push(Function {
                file: i,
                line: d.line,
                name: d.name.clone(),
                prototype: d.prototype.clone(),
            });
        }
    }
    (first, protos)
}

/// A C string literal for a `#line` directive.
pub fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// `::` and `->`.
    Op(&'static str),
    /// A number, string or character literal.
    Literal,
}

/// A token, its 1-based line, its text as written, and whether whitespace
/// (or a comment) came before it.
#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
    text: String,
    spaced: bool,
}

#[derive(Debug, Default)]
struct Scan {
    definitions: Vec<Definition>,
    /// Name and parameter key of every file-scope declaration `f(...);`.
    declarations: Vec<(String, String)>,
}

#[derive(Debug)]
struct Definition {
    line: usize,
    name: String,
    params_key: String,
    prototype: String,
    /// Found, but arduino-cli would not declare it (template, default
    /// arguments): it still marks where the prototypes go.
    skip: bool,
}

/// The tokens of one file; comments and preprocessor lines dropped, and
/// whatever `#if 0` hides.
fn tokenize(src: &str) -> Vec<Token> {
    let b: Vec<char> = src.chars().collect();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut at_line_start = true;
    let mut gap = true;
    // Inside `#if 0`: the depth of conditionals opened since (0: not
    // skipping).
    let mut skip_depth = 0usize;
    let text = |from: usize, to: usize| -> String { b[from..to.min(b.len())].iter().collect() };
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
            at_line_start = true;
            gap = true;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            gap = true;
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'/') {
            while i < b.len() && b[i] != '\n' {
                if b[i] == '\\' && b.get(i + 1) == Some(&'\n') {
                    line += 1;
                    i += 1;
                }
                i += 1;
            }
            gap = true;
            continue;
        }
        if c == '/' && b.get(i + 1) == Some(&'*') {
            i += 2;
            while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                if b[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            gap = true;
            continue;
        }
        if c == '#' && at_line_start {
            let start = i + 1;
            while i < b.len() && b[i] != '\n' {
                if b[i] == '\\' && b.get(i + 1) == Some(&'\n') {
                    line += 1;
                    i += 1;
                } else if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    i += 2;
                    while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                        if b[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            let d = text(start, i);
            let words: Vec<&str> = d.split_whitespace().collect();
            match words.as_slice() {
                ["if", "0", ..] if skip_depth == 0 => skip_depth = 1,
                [w, ..] if skip_depth > 0 && w.starts_with("if") => skip_depth += 1,
                ["endif", ..] if skip_depth > 0 => skip_depth -= 1,
                [w, ..] if skip_depth == 1 && (*w == "else" || *w == "elif") => skip_depth = 0,
                _ => {}
            }
            gap = true;
            continue;
        }
        at_line_start = false;
        let start = i;
        let tok_line = line;
        let tok = if c == '"' || c == '\'' {
            let raw = c == '"'
                && matches!(out.last(), Some(t) if !gap && matches!(&t.tok, Tok::Ident(s) if s.ends_with('R')));
            if raw {
                // R"delim( ... )delim"
                let mut j = i + 1;
                let mut delim = String::new();
                while j < b.len() && b[j] != '(' {
                    delim.push(b[j]);
                    j += 1;
                }
                let close: Vec<char> = format!("){delim}\"").chars().collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    if b[j] == '\n' {
                        line += 1;
                    }
                    j += 1;
                }
                i = j + close.len();
                out.pop();
            } else {
                i += 1;
                while i < b.len() && b[i] != c && b[i] != '\n' {
                    if b[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            Tok::Literal
        } else if c.is_alphanumeric() || c == '_' {
            let number = c.is_ascii_digit();
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_' || (number && b[i] == '.'))
            {
                i += 1;
            }
            if number {
                Tok::Literal
            } else {
                Tok::Ident(text(start, i))
            }
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            i += 2;
            Tok::Op("::")
        } else if c == '-' && b.get(i + 1) == Some(&'>') {
            i += 2;
            Tok::Op("->")
        } else {
            i += 1;
            Tok::Punct(c)
        };
        if skip_depth > 0 {
            continue;
        }
        out.push(Token {
            tok,
            line: tok_line,
            text: text(start, i),
            spaced: gap,
        });
        gap = false;
    }
    out
}

fn is(t: &Token, c: char) -> bool {
    t.tok == Tok::Punct(c)
}

fn word(t: &Token, w: &str) -> bool {
    matches!(&t.tok, Tok::Ident(s) if s == w)
}

fn scan(src: &str) -> Scan {
    let toks = tokenize(src);
    let mut s = Scan::default();
    let mut i = 0;
    while i < toks.len() {
        // One file-scope statement: up to `;` or an opening brace.
        let start = i;
        let mut depth = 0i32;
        let mut end = None;
        while i < toks.len() {
            let t = &toks[i];
            if is(t, '(') || is(t, '[') {
                depth += 1;
            } else if is(t, ')') || is(t, ']') {
                depth -= 1;
            } else if depth <= 0 && is(t, ';') {
                end = Some((i, false));
                break;
            } else if depth <= 0 && is(t, '{') {
                end = Some((i, true));
                break;
            }
            i += 1;
        }
        let Some((stop, braced)) = end else { break };
        let head = &toks[start..stop];
        if !braced {
            if let Some(d) = declaration(head) {
                s.declarations.push(d);
            }
            i = stop + 1;
            continue;
        }
        match block_kind(head) {
            // The statements inside a namespace or extern "C" block are not
            // at file scope: skip them whole.
            Block::Scope => i = skip_braces(&toks, stop) + 1,
            Block::Function => {
                if let Some(d) = definition(head) {
                    s.definitions.push(d);
                }
                i = skip_braces(&toks, stop) + 1;
            }
            // `struct X { ... } x;`, `int a[] = { ... };`: the statement
            // goes on to its `;`.
            Block::Other => {
                i = skip_braces(&toks, stop) + 1;
                while i < toks.len() && !is(&toks[i], ';') {
                    if is(&toks[i], '{') {
                        i = skip_braces(&toks, i);
                    }
                    i += 1;
                }
                i += 1;
            }
        }
    }
    s
}

#[derive(PartialEq, Eq, Debug)]
enum Block {
    Function,
    Scope,
    Other,
}

fn block_kind(head: &[Token]) -> Block {
    if head.iter().any(|t| word(t, "namespace"))
        || (head.len() >= 2 && word(&head[0], "extern") && head[1].tok == Tok::Literal)
    {
        return Block::Scope;
    }
    let paren = head.iter().position(|t| is(t, '('));
    let before = &head[..paren.unwrap_or(head.len())];
    if before.iter().any(|t| {
        ["class", "struct", "union", "enum", "typedef"]
            .iter()
            .any(|w| word(t, w))
    }) {
        return Block::Other;
    }
    match paren {
        Some(_) if !before.iter().any(|t| is(t, '=')) => Block::Function,
        _ => Block::Other,
    }
}

/// Index of the `}` that closes the `{` at `open`.
fn skip_braces(toks: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (j, t) in toks.iter().enumerate().skip(open) {
        if is(t, '{') {
            depth += 1;
        } else if is(t, '}') {
            depth -= 1;
            if depth == 0 {
                return j;
            }
        }
    }
    toks.len()
}

/// `ret name(params) quals`: the name's index, the name, and the indices of
/// the parentheses around the parameters.
fn signature(head: &[Token]) -> Option<(usize, String, usize, usize)> {
    let open = head.iter().position(|t| is(t, '('))?;
    if open == 0 {
        return None;
    }
    let Tok::Ident(name) = &head[open - 1].tok else {
        return None;
    };
    if [
        "if",
        "while",
        "for",
        "switch",
        "return",
        "sizeof",
        "decltype",
        "__attribute__",
    ]
    .contains(&name.as_str())
    {
        return None;
    }
    // `Foo::bar(...)`: a member defined outside its class.
    if open >= 2 && head[open - 2].tok == Tok::Op("::") {
        return None;
    }
    let mut depth = 0;
    for (j, t) in head.iter().enumerate().skip(open) {
        if is(t, '(') {
            depth += 1;
        } else if is(t, ')') {
            depth -= 1;
            if depth == 0 {
                return Some((open - 1, name.clone(), open, j));
            }
        }
    }
    None
}

fn definition(head: &[Token]) -> Option<Definition> {
    let (name_at, name, open, close) = signature(head)?;
    // No return type: a macro use or a constructor, not a function to declare.
    if name_at == 0 {
        return None;
    }
    // After the parameters only qualifiers may follow; `:` or `=` make it
    // something else (an initializer list, a deleted function).
    if head[close + 1..].iter().any(|t| is(t, ':') || is(t, '=')) {
        return None;
    }
    let template = word(&head[0], "template");
    let defaults = depth_zero_has(&head[open + 1..close], '=');
    Some(Definition {
        line: head[0].line,
        params_key: params_key(&head[open + 1..close]),
        prototype: format!("{};", render(head)),
        name,
        skip: template || defaults,
    })
}

fn declaration(head: &[Token]) -> Option<(String, String)> {
    let (name_at, name, open, close) = signature(head)?;
    if name_at == 0 || head[..name_at].iter().any(|t| is(t, '=')) {
        return None;
    }
    Some((name, params_key(&head[open + 1..close])))
}

fn depth_zero_has(toks: &[Token], c: char) -> bool {
    let mut depth = 0;
    for t in toks {
        if is(t, '(') || is(t, '<') || is(t, '[') {
            depth += 1;
        } else if is(t, ')') || is(t, '>') || is(t, ']') {
            depth -= 1;
        } else if depth == 0 && is(t, c) {
            return true;
        }
    }
    false
}

/// The parameters' types without their names, so that `void f(int a)`
/// matches its declaration `void f(int)`.
fn params_key(params: &[Token]) -> String {
    let mut parts = Vec::new();
    let mut cur: Vec<&Token> = Vec::new();
    let mut depth = 0;
    let flush = |cur: &mut Vec<&Token>, parts: &mut Vec<String>| {
        // A trailing identifier after a type word, `*`, `&` or `>` is the
        // parameter's name.
        if cur.len() >= 2 && matches!(cur[cur.len() - 1].tok, Tok::Ident(_)) {
            let prev = cur[cur.len() - 2];
            if matches!(prev.tok, Tok::Ident(_)) || is(prev, '*') || is(prev, '&') || is(prev, '>')
            {
                cur.pop();
            }
        }
        parts.push(
            cur.iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(""),
        );
        cur.clear();
    };
    for t in params {
        if is(t, '(') || is(t, '<') {
            depth += 1;
        } else if is(t, ')') || is(t, '>') {
            depth -= 1;
        }
        if depth == 0 && is(t, ',') {
            flush(&mut cur, &mut parts);
        } else {
            cur.push(t);
        }
    }
    flush(&mut cur, &mut parts);
    let key = parts.join(",");
    if key == "void" {
        String::new()
    } else {
        key
    }
}

/// The tokens as written, on one line: one space wherever the source had
/// whitespace, a comment or a line break.
fn render(toks: &[Token]) -> String {
    let mut out = String::new();
    for (n, t) in toks.iter().enumerate() {
        let after_open = n > 0 && (is(&toks[n - 1], '(') || is(&toks[n - 1], '['));
        if n > 0 && t.spaced && !after_open && !is(t, ')') && !is(t, ']') {
            out.push(' ');
        }
        out.push_str(&t.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ino(name: &str, text: &str) -> InoFile {
        InoFile {
            path: PathBuf::from(format!("/s/{name}")),
            text: text.to_string(),
        }
    }

    fn protos(files: &[InoFile]) -> Vec<String> {
        prototypes(files).into_iter().map(|f| f.prototype).collect()
    }

    #[test]
    fn prototypes_go_before_the_first_function() {
        let src = "#include <ESP8266WiFi.h>\n\
                   WiFiClient net; // a global\n\
                   void setup() {\n  MQTT_connect();\n}\n\
                   void loop() {}\n\
                   void MQTT_connect() {\n  int8_t ret;\n}\n";
        let out = merge(&[ino("a.ino", src)]);
        assert_eq!(
            out,
            "#include <Arduino.h>\n#line 1 \"/s/a.ino\"\n\
             #include <ESP8266WiFi.h>\nWiFiClient net; // a global\n\
             #line 3 \"/s/a.ino\"\nvoid setup();\n\
             #line 6 \"/s/a.ino\"\nvoid loop();\n\
             #line 7 \"/s/a.ino\"\nvoid MQTT_connect();\n\
             #line 3 \"/s/a.ino\"\n\
             void setup() {\n  MQTT_connect();\n}\nvoid loop() {}\n\
             void MQTT_connect() {\n  int8_t ret;\n}\n"
        );
    }

    #[test]
    fn other_ino_files_follow_the_main_one_and_share_the_prototypes() {
        let main = ino(
            "sk.ino",
            "int x = 1;\nvoid setup() { helper(2); }\nvoid loop() {}\n",
        );
        let other = ino(
            "b_helpers.ino",
            "static int helper(int n) {\n  return n * x;\n}\n",
        );
        let out = merge(&[main, other]);
        let protos: Vec<&str> = out.lines().filter(|l| l.ends_with(");")).collect();
        assert_eq!(
            protos,
            ["void setup();", "void loop();", "static int helper(int n);"]
        );
        assert!(out.contains("#line 1 \"/s/b_helpers.ino\"\nstatic int helper(int n) {"));
        assert!(
            out.find("static int helper(int n);").unwrap() < out.find("void setup() {").unwrap()
        );
    }

    #[test]
    fn what_gets_no_prototype() {
        let src = r#"
/* void commented(int a) { } */
// void alsoCommented() {}
const char *s = "void inString() {";
void declared(int);
class Feed {
 public:
  void publish(uint32_t v) { (void)v; }
};
struct P { int a; } points[2] = {{1}, {2}};
namespace util { void inner() {} }
extern "C" { void c_side(void) {} }
template <typename T> T twice(T v) { return v + v; }
void withDefault(int a = 3) { (void)a; }
int table[] = { 1, 2, 3 };
auto lambda = []() { return 1; };
Feed::Feed() {}
#if 0
void disabled() {}
#endif
void declared(int value) { (void)value; }
unsigned long long big(const char *topic, uint8_t *payload, unsigned int length) { return 0; }
void setup() {}
"#;
        let protos = protos(&[ino("x.ino", src)]);
        assert_eq!(
            protos,
            [
                "unsigned long long big(const char *topic, uint8_t *payload, unsigned int length);",
                "void setup();"
            ]
        );
    }

    #[test]
    fn multi_line_heads_and_attributes_are_joined() {
        let src = "ICACHE_RAM_ATTR void\nonEdge(\n  int pin,\n  bool level) {\n}\n";
        assert_eq!(
            protos(&[ino("x.ino", src)]),
            ["ICACHE_RAM_ATTR void onEdge(int pin, bool level);"]
        );
        let out = merge(&[ino("x.ino", src)]);
        assert!(out.contains("#line 1 \"/s/x.ino\"\nICACHE_RAM_ATTR void onEdge(int pin, bool level);\n#line 1 \"/s/x.ino\"\nICACHE_RAM_ATTR void\n"));
    }

    #[test]
    fn std_function_parameters_and_references() {
        let src = "void on(std::function<void(char*, uint8_t*, unsigned int)> cb) {}\n\
                   void msg(String &topic, String &payload) {}\n\
                   const String& name() { static String n; return n; }\n";
        assert_eq!(
            protos(&[ino("x.ino", src)]),
            [
                "void on(std::function<void(char*, uint8_t*, unsigned int)> cb);",
                "void msg(String &topic, String &payload);",
                "const String& name();"
            ]
        );
    }

    #[test]
    fn a_sketch_without_functions_is_left_as_is() {
        let out = merge(&[ino("x.ino", "int x;")]);
        assert_eq!(out, "#include <Arduino.h>\n#line 1 \"/s/x.ino\"\nint x;\n");
    }

    #[test]
    fn raw_strings_and_char_literals_do_not_confuse_braces() {
        let src = "const char *page = R\"html(<b>{</b>)html\";\nchar c = '{';\nvoid setup() {}\n";
        assert_eq!(protos(&[ino("x.ino", src)]), ["void setup();"]);
    }

    #[test]
    fn paths_are_quoted_for_line_directives() {
        assert_eq!(
            quote(Path::new("/a b/\"q\"\\x.ino")),
            "\"/a b/\\\"q\\\"\\\\x.ino\""
        );
    }
}
