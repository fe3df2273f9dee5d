#!/usr/bin/env python3
"""Folded stacks and a flame graph SVG from `perf script` output, without the
FlameGraph scripts (not packaged for Debian bookworm, and nothing is fetched).

    perf script -i perf.data | Profiles/flamegraph.py --folded out.folded --title T > out.svg

Kernel frames get the folded format's "_[k]" suffix. The input is perf script's default text: a header line per sample
(comm, pid, time, period, event), then one line per frame, innermost first,
`<addr> <symbol>+<offset> (<dso>)`, then a blank line. Frames are collapsed
root first into "a;b;c count" lines (Brendan Gregg's folded format, so other
tools can read them), Swift symbols are demangled with
`swift demangle --simplified` (one process for all names), and the SVG is the
usual icicle-upside-down flame graph: x is share of samples (alphabetical, not
time), y is stack depth, each box's width its inclusive samples. Hover a box
for its full name, samples and share; click to zoom into it, click the
background (or "Reset zoom") to zoom out.
"""
import argparse
import collections
import hashlib
import html
import re
import shutil
import subprocess
import sys

FRAME = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")
OFFSET = re.compile(r"\+0x[0-9a-f]+$")
KERNEL = "_[k]"
OWN = set()  # frames in the netstack binary itself (mangled), coloured green


def parse(stream, keep_comm):
    """Yields (comm, frames innermost first) per sample."""
    header = None
    frames = []
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if header is not None:
                yield header, label(frames)
            header, frames = None, []
            continue
        if header is None:
            # "netstack  1234 [001] 12.345:  1001001 cpu-clock:pppH:" -> comm
            header = line.split()[0] if line.split() else "?"
            continue
        m = FRAME.match(line)
        if m:
            frames.append((OFFSET.sub("", m.group(2)), m.group(3)))
    if header is not None:
        yield header, label(frames)


def label(frames):
    """Frame names: kernel frames get the "_[k]" mark, unknown ones their
    binary's name; the netstack binary's go into OWN. An inlined frame
    ("(inlined)" in place of the binary) belongs to the next real frame's binary."""
    names = []
    dso = ""
    for sym, where in reversed(frames):  # outermost first, so an inlined frame's binary is known
        if where != "inlined":
            dso = where
        if sym == "[unknown]":
            base = dso.rsplit("/", 1)[-1]
            sym = f"[{base}]" if base and base != "unknown" else "[unknown]"
        if "kernel.kallsyms" in dso or dso.startswith("[kernel"):
            sym += KERNEL  # the folded format's mark for kernel frames
        elif dso.endswith("/netstack"):
            OWN.add(sym)
        names.append(sym)
    names.reverse()
    return names


def demangle(names):
    """Maps each Swift-mangled name to its simplified demangling."""
    mangled = sorted(n for n in names if n.startswith(("$s", "_$s", "$S", "_T0")))
    if not mangled or not shutil.which("swift-demangle") and not shutil.which("swift"):
        return {}
    cmd = ["swift-demangle", "--simplified", "--compact"] if shutil.which("swift-demangle") \
        else ["swift", "demangle", "--simplified", "--compact"]
    out = subprocess.run(cmd, input="\n".join(mangled) + "\n", capture_output=True, text=True)
    if out.returncode != 0:
        return {}
    lines = out.stdout.split("\n")
    return {m: d for m, d in zip(mangled, lines) if d}


def fold(stream, keep_comm=False):
    counts = collections.Counter()
    for comm, frames in parse(stream, keep_comm):
        stack = list(reversed(frames)) or ["[no stack]"]
        if keep_comm:
            stack.insert(0, comm)
        counts[tuple(stack)] += 1
    names = {f for s in counts for f in s}
    table = demangle(names)
    for f in list(OWN):
        OWN.add(table.get(f, f).replace(";", ","))
    folded = collections.Counter()
    for stack, n in counts.items():
        # ';' separates frames in the folded format.
        folded[tuple(table.get(f, f).replace(";", ",") for f in stack)] += n
    return folded


class Node:
    __slots__ = ("name", "value", "children")

    def __init__(self, name):
        self.name, self.value, self.children = name, 0, {}


def tree(folded):
    root = Node("all")
    for stack, n in folded.items():
        root.value += n
        node = root
        for f in stack:
            node = node.children.setdefault(f, Node(f))
            node.value += n
    return root


def color(name):
    """Stable colours: the netstack binary's own code green, the kernel orange-red,
    other libraries (Swift runtime, libc, liburing) yellow."""
    h = int(hashlib.md5(name.encode()).hexdigest()[:8], 16)
    if name in OWN:
        r, g, b = 120 + h % 80, 190 + (h >> 8) % 50, 60 + (h >> 16) % 40
    elif name.endswith(KERNEL):
        r, g, b = 225 + h % 30, 80 + h % 70, 40 + (h >> 8) % 30
    else:
        r, g, b = 215 + h % 40, 190 + (h >> 8) % 50, 40 + (h >> 16) % 50
    return f"rgb({r},{g},{b})"


def svg(root, title, width=1200, frame_height=16, min_width=0.3):
    total = max(root.value, 1)
    depth = [0]

    def measure(node, d):
        depth[0] = max(depth[0], d)
        for c in node.children.values():
            if c.value / total * width >= min_width:
                measure(c, d + 1)

    measure(root, 0)
    top = 48
    height = top + (depth[0] + 1) * frame_height + 30
    boxes = []

    def draw(node, x, d):
        w = node.value / total * width
        y = height - 30 - (d + 1) * frame_height
        label = node.name
        pct = 100.0 * node.value / total
        tip = f"{label} ({node.value} samples, {pct:.2f}%)"
        chars = int((w - 6) / 7)
        text = label if len(label) <= chars else (label[: max(chars - 2, 0)] + ".." if chars > 3 else "")
        boxes.append(
            f'<g class="f" data-x="{x:.2f}" data-w="{w:.2f}"><title>{html.escape(tip)}</title>'
            f'<rect x="{x:.2f}" y="{y}" width="{max(w - 0.5, 0.1):.2f}" height="{frame_height - 1}" '
            f'fill="{color(label) if d else "rgb(200,200,200)"}" rx="2"/>'
            f'<text x="{x + 3:.2f}" y="{y + frame_height - 5}">{html.escape(text)}</text></g>'
        )
        cx = x
        for c in sorted(node.children.values(), key=lambda c: c.name):
            if c.value / total * width >= min_width:
                draw(c, cx, d + 1)
            cx += c.value / total * width

    draw(root, 0.0, 0)
    script = """
<script><![CDATA[
var W=%d, full=[];
function init(){var gs=document.querySelectorAll('g.f');for(var i=0;i<gs.length;i++){full.push(gs[i]);}}
function zoom(g){var x0=+g.dataset.x,w0=+g.dataset.w,y0=+g.querySelector('rect').getAttribute('y');
 full.forEach(function(e){var r=e.querySelector('rect'),t=e.querySelector('text'),x=+e.dataset.x,w=+e.dataset.w,y=+r.getAttribute('y');
  var inside=x>=x0-0.001&&x+w<=x0+w0+0.001;var below=y>=y0;
  if((inside||(below&&x<=x0+0.001&&x+w>=x0+w0-0.001))){var nx=(Math.max(x,x0)-x0)*W/w0,nw=Math.min(w,w0)*W/w0;if(!inside){nx=0;nw=W;}
   e.style.display='';r.setAttribute('x',nx);r.setAttribute('width',Math.max(nw-0.5,0.1));t.setAttribute('x',nx+3);
   var name=e.querySelector('title').textContent.replace(/ \\([0-9]+ samples.*$/,''),c=Math.floor((nw-6)/7);
   t.textContent=name.length<=c?name:(c>3?name.substring(0,c-2)+'..':'');}
  else{e.style.display='none';}});}
function reset(){full.forEach(function(e){var r=e.querySelector('rect'),t=e.querySelector('text'),x=+e.dataset.x,w=+e.dataset.w;
 e.style.display='';r.setAttribute('x',x);r.setAttribute('width',Math.max(w-0.5,0.1));t.setAttribute('x',x+3);
 var name=e.querySelector('title').textContent.replace(/ \\([0-9]+ samples.*$/,''),c=Math.floor((w-6)/7);
 t.textContent=name.length<=c?name:(c>3?name.substring(0,c-2)+'..':'');});}
document.addEventListener('click',function(ev){var g=ev.target.closest?ev.target.closest('g.f'):null;if(g){zoom(g);}else if(ev.target.id==='reset'||ev.target.id==='bg'){reset();}});
init();
]]></script>""" % width
    return (
        f'<?xml version="1.0" standalone="no"?>\n'
        f'<svg version="1.1" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="Verdana, sans-serif" font-size="11">\n'
        f'<style>text{{pointer-events:none}} g.f:hover rect{{stroke:black;stroke-width:0.5}} #reset{{cursor:pointer}}</style>\n'
        f'<rect id="bg" x="0" y="0" width="{width}" height="{height}" fill="rgb(250,250,240)"/>\n'
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">{html.escape(title)}</text>\n'
        f'<text x="{width / 2}" y="38" text-anchor="middle" fill="gray">{total} samples; width = share of '
        f'samples (inclusive), boxes sorted by name; green: netstack, orange: kernel, yellow: runtime and '
        f'libraries; hover for details, click to zoom</text>\n'
        f'<text id="reset" x="10" y="20" fill="blue">Reset zoom</text>\n'
        + "\n".join(boxes) + script + "\n</svg>\n"
    )


def inclusive_table(folded, top, kernel, skip_above=0.98):
    """Lines "children% self% name" for the `top` user-space (or kernel) frames
    by inclusive share, each frame counted once per sample; frames that nearly
    every sample passes through (main, the event loop's run) are named on one
    line instead."""
    total = sum(folded.values()) or 1
    children = collections.Counter()
    own = collections.Counter()
    for stack, n in folded.items():
        for f in set(stack):
            children[f] += n
        own[stack[-1]] += n
    ranked = sorted(((f, n) for f, n in children.items() if f.endswith(KERNEL) == kernel),
                    key=lambda kv: (-kv[1], kv[0]))
    entry = [f for f, n in ranked if n / total > skip_above]
    lines = [f"(in more than {skip_above:.0%} of samples, left out: {', '.join(entry)})"] if entry else []
    for f, n in [kv for kv in ranked if kv[1] / total <= skip_above][:top]:
        lines.append(f"{100.0 * n / total:8.2f}% {100.0 * own[f] / total:8.2f}%  {f}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", nargs="?", help="perf script output (default: stdin)")
    ap.add_argument("--title", default="Flame graph")
    ap.add_argument("--folded", help="also write the folded stacks here")
    ap.add_argument("--comm", action="store_true", help="root each stack at its thread's name")
    ap.add_argument("--inclusive", help="also write tables of the user-space (here) and kernel (here + .kernel) "
                                        "frames with the most inclusive samples")
    ap.add_argument("--top", type=int, default=30, help="rows in the --inclusive table")
    ap.add_argument("--min-width", type=float, default=0.3, help="leave out boxes narrower than this (px)")
    a = ap.parse_args()
    src = open(a.input, errors="replace") if a.input else sys.stdin
    folded = fold(src, a.comm)
    if a.folded:
        with open(a.folded, "w") as f:
            for stack, n in sorted(folded.items()):
                f.write(";".join(stack) + f" {n}\n")
    if a.inclusive:
        with open(a.inclusive, "w") as f:
            f.write(inclusive_table(folded, a.top, kernel=False))
        with open(a.inclusive + ".kernel", "w") as f:
            f.write(inclusive_table(folded, a.top, kernel=True))
    sys.stdout.write(svg(tree(folded), a.title, min_width=a.min_width))


if __name__ == "__main__":
    main()
