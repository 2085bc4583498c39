from zoo.readme import BEGIN, README, entries_table, render


def test_readme_table_matches_metrics_json():
    text = README.read_text()
    assert BEGIN in text
    assert render(text) == text, "README's table is stale: run `python -m zoo.readme`"
    assert "`sentiment`" in entries_table()


def test_readme_opens_with_the_two_setup_commands():
    head = README.read_text()[:600]
    assert "make train-sentiment" in head and "make test" in head
