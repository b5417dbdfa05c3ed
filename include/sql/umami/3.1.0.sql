-- What Umami 3.1.0's migrations 14 .. 19 change in the tables of 2.20.2.sql (apply after it).

-- 15_add_share: share links move to a table of their own; the website loses share_id
DROP INDEX "website_share_id_idx";
DROP INDEX "website_share_id_key";
ALTER TABLE "website" DROP COLUMN "share_id";

-- 17_remove_duplicate_key: unique keys that repeat a primary key
DROP INDEX "session_session_id_key";
DROP INDEX "website_website_id_key";
DROP INDEX "team_team_id_key";
DROP INDEX "team_user_team_user_id_key";

-- 18_add_performance: web vitals on website_event (performance beacons are event_type 5)
ALTER TABLE "website_event" ADD COLUMN "cls" DECIMAL(10,4),
ADD COLUMN "fcp" DECIMAL(10,1),
ADD COLUMN "inp" DECIMAL(10,1),
ADD COLUMN "lcp" DECIMAL(10,1),
ADD COLUMN "ttfb" DECIMAL(10,1);

-- 19_add_session_replay
ALTER TABLE "website" ADD COLUMN "replay_enabled" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "website" ADD COLUMN "replay_config" JSONB;
