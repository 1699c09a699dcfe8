"""The benchmarks' output: a markdown table of (measure, value, note) rows."""


def print_table(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"\n| {'measure':{width}s} | value | note |\n|{'-' * (width + 2)}|---|---|")
    for name, value, note in rows:
        print(f"| {name:{width}s} | {value} | {note} |")
