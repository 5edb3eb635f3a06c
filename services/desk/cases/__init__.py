"""Complaint cases: investigation, finding, remedies with approvals, acknowledgements and the
call-back (issue 10 item 1)."""
