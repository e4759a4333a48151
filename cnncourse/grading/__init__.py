"""Release student copies, grade submissions in a sandbox, write reports.

Modules, one concept each:

* :mod:`~cnncourse.grading.notebook`: reading notebooks (cells, exercise cells, imports);
* :mod:`~cnncourse.grading.release`: student copies, nbgrader metadata, the manifest;
* :mod:`~cnncourse.grading.sandbox`: the grader's side of the child process (limits, deadlines);
* :mod:`~cnncourse.grading.child`, :mod:`~cnncourse.grading.guard` and
  :mod:`~cnncourse.grading.landlock`: the child's side (protocol, guards, kernel limits);
* :mod:`~cnncourse.grading.wire`: frames and the pickle-free value codec between the two;
* :mod:`~cnncourse.grading.autograde`: grading submissions with the hidden checks;
* :mod:`~cnncourse.grading.report`: CSV, JSON and Markdown reports;
* :mod:`~cnncourse.grading.validate`: source earns full marks, release earns zero;
* :mod:`~cnncourse.grading.execute` and :mod:`~cnncourse.grading.doctor`: the
  ``run-notebooks`` and ``doctor`` commands.

Nothing is imported here: the sandboxed child imports this package and must stay lean.
"""
