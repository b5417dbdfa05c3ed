-- What Umami 3.3's migrations after 3.1.0 change in the tables of 3.1.0 (apply after 2.20.2.sql and 3.1.0.sql).

-- 20_add_heatmap (the main line's version): session replay becomes the recorder
ALTER TABLE "website" RENAME COLUMN "replay_enabled" TO "recorder_enabled";

-- 21_add_session_link: identity stitching, one row per (website, identity, session), timed at the identify
CREATE TABLE "session_link" (
    "website_id" UUID NOT NULL,
    "session_id" UUID NOT NULL,
    "distinct_id" VARCHAR(50) NOT NULL,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "session_link_pkey" PRIMARY KEY ("website_id", "distinct_id", "session_id")
);
CREATE INDEX "session_link_website_id_session_id_idx" ON "session_link"("website_id", "session_id");

-- 23_update_session_data: one row per (session, key), the newest kept; the write path then upserts on it
DELETE FROM "session_data" AS d
USING (SELECT "session_data_id",
              row_number() OVER (PARTITION BY "session_id", "data_key"
                                 ORDER BY "created_at" DESC NULLS LAST, "session_data_id" DESC) AS rank
       FROM "session_data") AS ranked
WHERE d."session_data_id" = ranked."session_data_id" AND ranked.rank > 1;
CREATE UNIQUE INDEX "session_data_session_id_data_key_key" ON "session_data"("session_id", "data_key");
