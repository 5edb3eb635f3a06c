-- Issue 9: the board shows and edits agents' skills and weekly schedules: routing's agent.status
-- now carries them (AgentSkills as JSON). NULL: routing has not said yet (an older status).
ALTER TABLE desk.agent_status ADD COLUMN skills jsonb;
