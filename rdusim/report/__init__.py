"""Reports: everything here only reads a RunResult; nothing re-simulates.

render.render_report(result, out_dir) -> index.html, report.md, CSVs;
trace.write_trace(events, out_dir) -> trace.json (Chrome/Perfetto).
"""
