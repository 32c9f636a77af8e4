-- The cleared values are gone for good; nothing to undo.
SELECT 1;
