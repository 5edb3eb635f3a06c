"""Reports for managers (R10.2–10.3): KPIs of any period from metrics' own tables, as HTML with
charts and PDF, kept and e-mailed daily, weekly and monthly; improvement actions measured
before and after."""
