"""Shared helpers of the layout scripts in .ci/: the crate's module tree and Rust text with
comments and literals blanked (so braces and paths inside them do not count).

Only the standard library: CI runs these on a fresh machine with the Rust toolchain and python3.
"""
import os
import re

SRC = "src"


def blank_comments_and_literals(text):
    """Returns `text` with comments, string and char literals replaced by spaces (newlines kept),
    so line numbers stay and only code is left to match."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c == "/" and nxt == "*":
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"' or (c == "b" and nxt == '"' and not (i and (text[i - 1].isalnum() or text[i - 1] == "_"))):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}', b'x' handled as ' after b) or a lifetime ('a).
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def rust_files(root=SRC):
    """Every .rs file under `root`, sorted."""
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files if f.endswith(".rs")]
    return sorted(found)


def module_path(path, root=SRC):
    """`src/core/execution/mod.rs` → ("crate", "core", "execution"). `src/main.rs` and the
    binaries under `src/bin/` are roots of their own crates: None."""
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if rel == "lib.rs":
        return ("crate",)
    if rel == "main.rs" or rel.startswith("bin/"):
        return None
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return ("crate",) + tuple(parts)


def item_end(code, start):
    """The index just past the item that starts at `start`: at its first `;` before any `{`, or
    at the brace that closes its first `{`."""
    depth = 0
    for j in range(start, len(code)):
        ch = code[j]
        if ch == ";" and depth == 0:
            return j + 1
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


CFG_TEST = re.compile(r"#\[cfg\(test\)\]")
ATTR = re.compile(r"\s*#\[[^\]]*(\[[^\]]*\][^\]]*)*\]")


def cfg_test_spans(code):
    """(start, end) character spans of the items marked `#[cfg(test)]` in blanked `code`."""
    spans = []
    for m in CFG_TEST.finditer(code):
        j = m.end()
        while True:  # further attributes of the same item
            a = ATTR.match(code, j)
            if not a:
                break
            j = a.end()
        spans.append((m.start(), item_end(code, j)))
    return spans


def test_only_modules(files):
    """Files whose module is declared `#[cfg(test)] mod name;` (all of them is test code)."""
    out = set()
    for path in files:
        code = blank_comments_and_literals(open(path, encoding="utf-8").read())
        base = os.path.dirname(path)
        if not (path.endswith("/mod.rs") or path.endswith("/lib.rs") or path.endswith("/main.rs")):
            base = path[:-3]
        for m in re.finditer(r"#\[cfg\(test\)\](\s*#\[[^\]]*\])*\s*(pub(\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code):
            name = m.group(4)
            for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
                if os.path.exists(cand):
                    out.add(os.path.normpath(cand))
    # children of test-only folders are test-only too
    folders = [p[: -len("mod.rs")] if p.endswith("/mod.rs") else p[:-3] + "/" for p in out]
    for path in files:
        if any(path.startswith(f) for f in folders):
            out.add(os.path.normpath(path))
    return out
