"""The attribute report: per query, the most helpful and most harmful training examples with their scores,
as markdown and as a standalone HTML page (text escaped)."""

import html
from pathlib import Path

from grass.data.text import TextBlocks, decode_block
from grass.io import atomic_write_bytes

MAX_CHARS = 400  # of each training block shown


def _train_text(ctx, tokenizer, i: int) -> tuple[str, str]:
    """(label, text) of train example i."""
    data = ctx.data
    sources = getattr(data, "train_sources", None)
    label = f"train {i}" + (f" ({sources[i]})" if sources else "")
    if isinstance(data, TextBlocks):
        return label, decode_block(tokenizer, data.train_ids[i], data.train_mask[i], MAX_CHARS, data.vocab_map)
    return label, f"label {int(data.y_train[i])}" if hasattr(data, "y_train") else ""


def _entries(top_pair, j: int) -> list[tuple[int, float]]:
    values, index = top_pair
    return [(int(index[r, j]), float(values[r, j])) for r in range(values.shape[0])]


def write_report(ctx, layout, queries, top, damping: float | None) -> tuple[Path, Path]:
    """report.{md,html} of the top-k per query; damping: the one the scores used (None: the tda has none)."""
    from grass.store_stages.queries import tokenizer_of

    tokenizer = tokenizer_of(ctx.data) if isinstance(ctx.data, TextBlocks) else None
    cfg = ctx.cfg
    title = (f"grass attribution report: {cfg.experiment_name}, {cfg.model.name}, {cfg.compressor.name} "
             f"K={cfg.proj_dim}, tda {cfg.tda.name}" + ("" if damping is None else f", damping {damping:g}"))
    md = [f"# {title}", "", f"{len(queries.names)} queries against {ctx.task.n_train} training examples; "
          f"the {top.k} highest (most helpful) and lowest (most harmful) influence scores per query.", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    for j, (name, text, note) in enumerate(zip(queries.names, queries.texts, queries.notes)):
        md += [f"## Query {j}: {name}", "", "> " + text.replace("\n", "\n> "), ""]
        body += [f"<h2>Query {j}: {html.escape(name)}</h2>", f"<blockquote>{html.escape(text)}</blockquote>"]
        if note:
            md += [f"*Note: {note}.*", ""]
            body.append(f"<p class='note'><em>Note: {html.escape(note)}.</em></p>")
        for heading, pair in (("Most helpful", top.high), ("Most harmful", top.low)):
            md += [f"### {heading}", "", "| rank | score | training example | text |", "|---|---|---|---|"]
            body += [f"<h3>{heading}</h3>", "<table><tr><th>rank</th><th>score</th><th>training example</th>"
                     "<th>text</th></tr>"]
            for rank, (i, score) in enumerate(_entries(pair, j), 1):
                label, train_text = _train_text(ctx, tokenizer, i)
                cell = train_text.replace("|", "\\|").replace("\n", " ")
                md.append(f"| {rank} | {score:.4g} | {label} | {cell} |")
                body.append(f"<tr><td>{rank}</td><td>{score:.4g}</td><td>{html.escape(label)}</td>"
                            f"<td>{html.escape(train_text)}</td></tr>")
            md.append("")
            body.append("</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>grass report</title><style>"
            "body{font-family:sans-serif;max-width:70em;margin:auto}td{vertical-align:top;padding:4px;"
            "border-bottom:1px solid #ddd}blockquote{background:#f4f4f4;padding:8px}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    md_path, html_path = layout.report("md"), layout.report("html")
    atomic_write_bytes("\n".join(md).encode(), md_path)
    atomic_write_bytes(page.encode(), html_path)
    return md_path, html_path
