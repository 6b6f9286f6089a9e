"""Comparing trained variants: grouping runs into variants (``variants``), the statistics over seeds (``stats``:
95% CI, Welch p, Holm), reading ``summary.json`` files (``summaries``), the table (``table``) and its figure
(``plot``)."""
