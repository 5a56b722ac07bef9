DROP FUNCTION metrics_cut_parts(timestamptz[], timestamptz[], uuid, uuid);
