"""Company-caused course changes (R8.3): announced by course operations, told to every enrolled
learner once through incident's notice releaser, answered by learners as tickets linked to the
change; and course operations' decisions on learners' own change requests."""
