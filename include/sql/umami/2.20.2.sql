-- Umami's tables that umami_mongo_sync and the local Umami API read, as Umami 2.20.2's PostgreSQL migrations
-- (db/postgresql/migrations 01_init .. 13_add_revenue; 3.1.0's prisma/migrations 01 .. 13 are the same) leave
-- them: column order, types, nullability, defaults, keys and indexes. Written for this project from reading
-- those migrations (see README.md here); Umami declares no foreign keys. Tables the sync does not read (users,
-- reports, ...) are not created; team and team_user are, for the local API's team listing (includeTeams) and its
-- canViewWebsite. "-- NN" names the migration a column or index comes from.

-- CreateTable (01_init; 09 dropped hostname and subdivision2, renamed subdivision1 to region; 10 added distinct_id)
CREATE TABLE "session" (
    "session_id" UUID NOT NULL,
    "website_id" UUID NOT NULL,
    "browser" VARCHAR(20),
    "os" VARCHAR(20),
    "device" VARCHAR(20),
    "screen" VARCHAR(11),
    "language" VARCHAR(35),
    "country" CHAR(2),
    "region" VARCHAR(20),
    "city" VARCHAR(50),
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "distinct_id" VARCHAR(50),

    CONSTRAINT "session_pkey" PRIMARY KEY ("session_id")
);

-- CreateTable (02_report_schema_session_data; 06 dropped deleted_at, renamed session_key to data_key; 10 added distinct_id)
CREATE TABLE "session_data" (
    "session_data_id" UUID NOT NULL,
    "website_id" UUID NOT NULL,
    "session_id" UUID NOT NULL,
    "data_key" VARCHAR(500) NOT NULL,
    "string_value" VARCHAR(500),
    "number_value" DECIMAL(19,4),
    "date_value" TIMESTAMPTZ(6),
    "data_type" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "distinct_id" VARCHAR(50),

    CONSTRAINT "session_data_pkey" PRIMARY KEY ("session_data_id")
);

-- CreateTable (01_init; 04 added created_by, team_id)
CREATE TABLE "website" (
    "website_id" UUID NOT NULL,
    "name" VARCHAR(100) NOT NULL,
    "domain" VARCHAR(500),
    "share_id" VARCHAR(50),
    "reset_at" TIMESTAMPTZ(6),
    "user_id" UUID,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6),
    "deleted_at" TIMESTAMPTZ(6),
    "created_by" UUID,
    "team_id" UUID,

    CONSTRAINT "website_pkey" PRIMARY KEY ("website_id")
);

-- CreateTable (01_init; 04_team_redesign added deleted_at, logo_url)
CREATE TABLE "team" (
    "team_id" UUID NOT NULL,
    "name" VARCHAR(50) NOT NULL,
    "access_code" VARCHAR(50),
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6),
    "deleted_at" TIMESTAMPTZ(6),
    "logo_url" VARCHAR(2183),

    CONSTRAINT "team_pkey" PRIMARY KEY ("team_id")
);

-- CreateTable (01_init): a member's role is team-owner, team-manager, team-member or team-view-only
CREATE TABLE "team_user" (
    "team_user_id" UUID NOT NULL,
    "team_id" UUID NOT NULL,
    "user_id" UUID NOT NULL,
    "role" VARCHAR(50) NOT NULL,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(6),

    CONSTRAINT "team_user_pkey" PRIMARY KEY ("team_user_id")
);

-- CreateTable (01_init; 05 visit_id; 07 tag; 08 click ids and utm_*; 09 hostname) = 26 columns
CREATE TABLE "website_event" (
    "event_id" UUID NOT NULL,
    "website_id" UUID NOT NULL,
    "session_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,
    "url_path" VARCHAR(500) NOT NULL,
    "url_query" VARCHAR(500),
    "referrer_path" VARCHAR(500),
    "referrer_query" VARCHAR(500),
    "referrer_domain" VARCHAR(500),
    "page_title" VARCHAR(500),
    "event_type" INTEGER NOT NULL DEFAULT 1,
    "event_name" VARCHAR(50),
    "visit_id" UUID NOT NULL,
    "tag" VARCHAR(50),
    "fbclid" VARCHAR(255),
    "gclid" VARCHAR(255),
    "li_fat_id" VARCHAR(255),
    "msclkid" VARCHAR(255),
    "ttclid" VARCHAR(255),
    "twclid" VARCHAR(255),
    "utm_campaign" VARCHAR(255),
    "utm_content" VARCHAR(255),
    "utm_medium" VARCHAR(255),
    "utm_source" VARCHAR(255),
    "utm_term" VARCHAR(255),
    "hostname" VARCHAR(100),

    CONSTRAINT "website_event_pkey" PRIMARY KEY ("event_id")
);

-- CreateTable (01_init; 02 renamed event_* columns; 06 renamed event_key to data_key)
CREATE TABLE "event_data" (
    "event_data_id" UUID NOT NULL,
    "website_id" UUID NOT NULL,
    "website_event_id" UUID NOT NULL,
    "data_key" VARCHAR(500) NOT NULL,
    "string_value" VARCHAR(500),
    "number_value" DECIMAL(19,4),
    "date_value" TIMESTAMPTZ(6),
    "data_type" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(6) DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "event_data_pkey" PRIMARY KEY ("event_data_id")
);

-- team and team_user indexes (01)
CREATE UNIQUE INDEX "team_team_id_key" ON "team"("team_id");
CREATE UNIQUE INDEX "team_access_code_key" ON "team"("access_code");
CREATE INDEX "team_access_code_idx" ON "team"("access_code");
CREATE UNIQUE INDEX "team_user_team_user_id_key" ON "team_user"("team_user_id");
CREATE INDEX "team_user_team_id_idx" ON "team_user"("team_id");
CREATE INDEX "team_user_user_id_idx" ON "team_user"("user_id");

-- session indexes (01, 03, 09)
CREATE UNIQUE INDEX "session_session_id_key" ON "session"("session_id");
CREATE INDEX "session_created_at_idx" ON "session"("created_at");
CREATE INDEX "session_website_id_idx" ON "session"("website_id");
CREATE INDEX "session_website_id_created_at_idx" ON "session"("website_id", "created_at");
CREATE INDEX "session_website_id_created_at_browser_idx" ON "session"("website_id", "created_at", "browser");
CREATE INDEX "session_website_id_created_at_os_idx" ON "session"("website_id", "created_at", "os");
CREATE INDEX "session_website_id_created_at_device_idx" ON "session"("website_id", "created_at", "device");
CREATE INDEX "session_website_id_created_at_screen_idx" ON "session"("website_id", "created_at", "screen");
CREATE INDEX "session_website_id_created_at_language_idx" ON "session"("website_id", "created_at", "language");
CREATE INDEX "session_website_id_created_at_country_idx" ON "session"("website_id", "created_at", "country");
CREATE INDEX "session_website_id_created_at_city_idx" ON "session"("website_id", "created_at", "city");
CREATE INDEX "session_website_id_created_at_region_idx" ON "session"("website_id", "created_at", "region");

-- session_data indexes (02, 06)
CREATE INDEX "session_data_created_at_idx" ON "session_data"("created_at");
CREATE INDEX "session_data_website_id_idx" ON "session_data"("website_id");
CREATE INDEX "session_data_session_id_idx" ON "session_data"("session_id");
CREATE INDEX "session_data_session_id_created_at_idx" ON "session_data"("session_id", "created_at");
CREATE INDEX "session_data_website_id_created_at_data_key_idx" ON "session_data"("website_id", "created_at", "data_key");

-- website indexes (01, 04)
CREATE UNIQUE INDEX "website_website_id_key" ON "website"("website_id");
CREATE UNIQUE INDEX "website_share_id_key" ON "website"("share_id");
CREATE INDEX "website_share_id_idx" ON "website"("share_id");
CREATE INDEX "website_user_id_idx" ON "website"("user_id");
CREATE INDEX "website_created_at_idx" ON "website"("created_at");
CREATE INDEX "website_team_id_idx" ON "website"("team_id");
CREATE INDEX "website_created_by_idx" ON "website"("created_by");

-- website_event indexes (01, 03, 05, 07, 09)
CREATE INDEX "website_event_created_at_idx" ON "website_event"("created_at");
CREATE INDEX "website_event_session_id_idx" ON "website_event"("session_id");
CREATE INDEX "website_event_website_id_idx" ON "website_event"("website_id");
CREATE INDEX "website_event_website_id_created_at_idx" ON "website_event"("website_id", "created_at");
CREATE INDEX "website_event_website_id_session_id_created_at_idx" ON "website_event"("website_id", "session_id", "created_at");
CREATE INDEX "website_event_website_id_created_at_url_path_idx" ON "website_event"("website_id", "created_at", "url_path");
CREATE INDEX "website_event_website_id_created_at_url_query_idx" ON "website_event"("website_id", "created_at", "url_query");
CREATE INDEX "website_event_website_id_created_at_referrer_domain_idx" ON "website_event"("website_id", "created_at", "referrer_domain");
CREATE INDEX "website_event_website_id_created_at_page_title_idx" ON "website_event"("website_id", "created_at", "page_title");
CREATE INDEX "website_event_website_id_created_at_event_name_idx" ON "website_event"("website_id", "created_at", "event_name");
CREATE INDEX "website_event_visit_id_idx" ON "website_event"("visit_id");
CREATE INDEX "website_event_website_id_visit_id_created_at_idx" ON "website_event"("website_id", "visit_id", "created_at");
CREATE INDEX "website_event_website_id_created_at_tag_idx" ON "website_event"("website_id", "created_at", "tag");
CREATE INDEX "website_event_website_id_created_at_hostname_idx" ON "website_event"("website_id", "created_at", "hostname");

-- event_data indexes (01, 03, 06)
CREATE INDEX "event_data_created_at_idx" ON "event_data"("created_at");
CREATE INDEX "event_data_website_id_idx" ON "event_data"("website_id");
CREATE INDEX "event_data_website_event_id_idx" ON "event_data"("website_event_id");
CREATE INDEX "event_data_website_id_created_at_idx" ON "event_data"("website_id", "created_at");
CREATE INDEX "event_data_website_id_created_at_data_key_idx" ON "event_data"("website_id", "created_at", "data_key");
