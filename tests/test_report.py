from kvmem.report import Job, agreement, render_report
from kvmem.results import Result


def test_agreement_to_printed_digit():
    assert agreement(98.53, 98.5)
    assert agreement(9.13, 9.1)
    assert not agreement(98.56, 98.5)
    assert agreement(99.72, 99.72) and not agreement(99.73, 99.72)
    assert not agreement(float("nan"), 1.0)


def test_render_report_marks_agreement_and_failures():
    job = Job("fig3", "forgetting", "Figure 3")
    res = Result(
        "forgetting",
        {"seed": 0},
        metrics={"task1_acc_after_task1": 99.72, "task1_acc_after_task2": 50.0},
        provenance={"duration_s": 1.0},
    )
    bad = Job("capacity", "capacity", "Capacity")
    page = render_report(
        [("Paper", [(job, res, None)]), ("Beyond", [(bad, None, "RuntimeError: boom")])],
        quick=False,
        total_s=2.0,
    )
    assert "fig3/forgetting.png" in page
    assert page.count('class="ok">yes') == 1 and page.count('class="bad">no') == 1
    # claims: 99.72 after Task 1 does not decide them; 50 % after Task 2 fails the first
    assert 'class="bad">fails</span>: Task 2 training makes Task 1 inaccessible' in page
    assert "RuntimeError: boom" in page


def test_agreement_with_explicit_tolerance():
    assert agreement(0.125, 0.14, 0.02)
    assert not agreement(0.125, 0.16, 0.02)


def _page():
    job = Job("fig3", "forgetting", "Figure 3")
    res = Result(
        "forgetting",
        {"seed": 0},
        metrics={"task1_acc_after_task1": 99.72, "task1_acc_after_task2": 50.0},
        provenance={"duration_s": 1.25, "figures_s": 0.5},
    )
    bad = Job("capacity", "capacity", "Capacity")
    return render_report(
        [("Paper", [(job, res, None)]), ("Beyond", [(bad, None, "RuntimeError: boom")])],
        quick=False,
        total_s=2.0,
    )


def test_report_opens_with_provenance_and_a_summary():
    import platform

    import torch

    from kvmem._version import __version__

    page = _page()
    head = page[: page.index("<h2>Summary</h2>")]
    for needle in (__version__, "commit", torch.__version__.split("+")[0]):
        assert needle in head
    assert platform.python_version() in head and "CPUs" in head
    summary = page[page.index("<h2>Summary</h2>") : page.index("<h2>Paper</h2>")]
    # the headline is the first published metric, 99.72 against 99.72: agrees
    assert "href='#fig3'" in summary and "99.72" in summary and "agrees" in summary
    # a claim fails on this result (task 1 still at 50 % is not "inaccessible")
    assert "class='bad'>" in summary and " hold</span>" in summary
    assert "1.8" in summary  # compute 1.25 s + figures 0.5 s
    assert "failed: RuntimeError: boom" in summary


def test_metric_labels_are_readable_with_the_raw_key_kept():
    from kvmem.report import metric_label

    assert metric_label("task1_acc_after_task2") == "Task1 accuracy (%) after task2"
    assert metric_label("rmse_first_list_kv") == "RMSE first list key-value"

    class Module:
        LABELS = {"x_y": "The x of y"}

    assert metric_label("x_y", Module) == "The x of y"
    page = _page()
    assert "title='task1_acc_after_task2'" in page
    assert "<code class='key'>task1_acc_after_task2</code>" in page
    assert "Task1 accuracy (%) after task2" in page
    assert "figures 0.5 s" in page


def test_report_does_not_point_users_outside_the_package():
    page = _page()
    assert "SCIENCE" not in page and "../shared" not in page


def test_summary_headline_prefers_the_module_choice():
    from kvmem.report import _headline

    class Module:
        PUBLISHED = {"b": (2.0, "paper")}
        HEADLINE = "c"

    res = Result("x", {}, metrics={"a": 1.0, "b": 2.0, "c": 3.0})
    assert _headline(Module, res) == ("c", 3.0, None)
    Module.HEADLINE = "missing"
    assert _headline(Module, res) == ("b", 2.0, (2.0, "paper"))
    assert _headline(object(), res) == ("a", 1.0, None)
