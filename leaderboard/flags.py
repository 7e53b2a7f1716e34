"""Which records a leaderboard cell must footnote: those built on a GRADIEND that did not converge.

The GRADIEND adapters (``gradiend``, ``gradiend-fpi``, ``gradiend-mpi``) write ``notes["converged"]`` into
their variant step: False when no training seed met the ``reference`` convergence rule (the ``gradiend``
package, aieng-lab/gradiend; see ``methods/gradiend/convergence.py``): |r| ≥ 0.6, min |class mean| ≥ 0.5,
class means of opposite signs. Older records have no such key; they are "unknown" and get no marker.
"""

from __future__ import annotations

from harness.records import RunRecord

MARK = "†"
FOOTNOTE = ("built on a GRADIEND whose seeds did not converge under the reference rule (|r| ≥ 0.6, "
            "min |class mean| ≥ 0.5, opposite signs); see the record's notes")
FOOTNOTE_LATEX = (r"built on a GRADIEND whose seeds did not converge under the reference rule",
                  r"($|r| \geq 0.6$, min $|$class mean$|$ $\geq 0.5$, opposite signs); see the record's notes")


def unconverged(record: RunRecord) -> bool:
    """True when a variant step of ``record`` says ``notes.converged`` is False (a missing key is not False)."""
    return any(isinstance(notes := step.get("notes"), dict) and notes.get("converged") is False
               for step in record.variant_steps)
