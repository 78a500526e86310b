"""The SQL the KFP API server and MLMD run on their databases at first start.

Written here from their schemas, statement by statement in the form each
program sends it, so that a test can run them as the user the mysql charm
gives kfp. Not every table is here: enough to cover every kind of
statement each one runs.

API server, KFP 2.4.1 (kubeflow/pipelines tag 2.4.1):
- backend/src/apiserver/client_manager/client_manager.go `initDBDriver`:
  `CREATE DATABASE mlpipeline` on a connection without a database, an error
  containing "database exists" ignored (client/sql.go MYSQL_EXIST_ERROR);
  `InitDBClient`: `show tables`, gorm AutoMigrate of the models, `RemoveIndex`,
  `ModifyColumn(..., "longtext not null")` (client/sql.go MYSQL_TEXT_FORMAT),
  `AddIndex` x4, `AddUniqueIndex("name_namespace_index")`, three foreign keys
  ON DELETE/UPDATE CASCADE, the pipeline_versions backfill (INSERT ... SELECT,
  UPDATE, in a transaction), the run_details backfill (a multi-table UPDATE),
  `show index` and the drop of the old `idx_pipeline_version_uuid_name`.
- the tables' columns and indexes from the gorm tags in
  backend/src/apiserver/model/{db_status,default_experiment,experiment,
  pipeline,pipeline_version,run,pipeline_spec,runtime_config,task,
  resource_reference}.go; gorm v1 (jinzhu/gorm, v1.9.1 in 2.4.1's go.mod)
  makes a Go string `varchar(255)` (`size:N` below 65532: `varchar(N)`,
  above: `longtext`), int64 `bigint`, bool `boolean`, float64 `double`;
  names an unnamed index `idx_<table>_<column>`; creates each index with
  `CREATE [UNIQUE] INDEX name ON `table`(cols)` after checking `SHOW INDEXES`,
  and a foreign key with `ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY` after
  checking INFORMATION_SCHEMA.TABLE_CONSTRAINTS (dialect_mysql.go, scope.go).
- the rows it writes: backend/src/apiserver/storage/db_status_store.go
  (`db_statuses`: one row, HaveSamplesLoaded false, later true) and
  default_experiment_store.go (`default_experiments`: one row, its id set
  once the Default experiment exists).

MLMD 1.14.0 (google/ml-metadata tag v1.14.0):
- ml_metadata/metadata_store/mysql_metadata_source.cc: checks the default
  engine is transactional (INFORMATION_SCHEMA.ENGINES), `CREATE DATABASE IF
  NOT EXISTS <db>`, `USE <db>`.
- ml_metadata/util/metadata_source_query_config.cc, the MySQL config (the base
  config merged with kMySQLMetadataSourceQueryConfig): CREATE TABLE IF NOT
  EXISTS of each table, the secondary indexes as ALTER TABLE ... ADD INDEX
  (with prefix lengths on TEXT columns), the schema version table `MLMDEnv`
  (`schema_version` 10 at this tag), probed with a SELECT that fails on an
  empty database (metadata_store/query_config_executor.cc GetSchemaVersion),
  inserted and updated; inserts and locking reads (LOCK IN SHARE MODE); and the
  migration that rebuilds `Event` (CREATE TABLE EventTemp, INSERT IGNORE ...
  SELECT, DROP TABLE Event, ALTER TABLE EventTemp RENAME TO Event, ADD INDEX).
"""

# ruff: noqa: S608 - SQL built from upstream statements and the tests' own constants

from __future__ import annotations

MLPIPELINE = "mlpipeline"
METADB = "metadb"
# What an ignored CREATE DATABASE error must contain (KFP 2.4.1 client/sql.go).
DATABASE_EXISTS = "database exists"

# --- the API server -----------------------------------------------------------------

API_FIRST_CONNECTION = f"CREATE DATABASE {MLPIPELINE};"

API_SHOW_TABLES = "show tables;"

_V = "varchar(255)"
_NN = "NOT NULL"

API_CREATE_TABLES = [
    f"CREATE TABLE `db_statuses` (`HaveSamplesLoaded` boolean {_NN} , "
    "PRIMARY KEY (`HaveSamplesLoaded`));",
    f"CREATE TABLE `default_experiments` (`DefaultExperimentId` {_V} {_NN} , "
    "PRIMARY KEY (`DefaultExperimentId`));",
    f"CREATE TABLE `experiments` (`UUID` {_V} {_NN},`Name` {_V} {_NN},"
    f"`Description` {_V} {_NN},`CreatedAtInSec` bigint {_NN},"
    f"`LastRunCreatedAtInSec` bigint {_NN},`Namespace` {_V} {_NN},"
    f"`StorageState` {_V} {_NN} , PRIMARY KEY (`UUID`));",
    f"CREATE TABLE `pipelines` (`UUID` {_V} {_NN},`CreatedAtInSec` bigint {_NN},"
    f"`Name` {_V} {_NN},`Description` longtext,`Parameters` longtext,"
    f"`Status` {_V} {_NN},`DefaultVersionId` {_V},`Namespace` varchar(63) , "
    "PRIMARY KEY (`UUID`));",
    f"CREATE TABLE `pipeline_versions` (`UUID` {_V} {_NN},`CreatedAtInSec` bigint {_NN},"
    f"`Name` {_V} {_NN},`Parameters` longtext {_NN},`PipelineId` {_V} {_NN},"
    f"`Status` {_V} {_NN},`CodeSourceUrl` {_V},`Description` longtext,"
    f"`PipelineSpec` longtext {_NN},`PipelineSpecURI` longtext {_NN} , "
    "PRIMARY KEY (`UUID`));",
    f"CREATE TABLE `run_details` (`UUID` {_V} {_NN},`DisplayName` {_V} {_NN},"
    f"`Name` {_V} {_NN},`Description` {_V} {_NN},`Namespace` {_V} {_NN},"
    f"`ExperimentUUID` {_V} {_NN},`JobUUID` {_V} DEFAULT null,"
    f"`StorageState` {_V} {_NN},`ServiceAccount` {_V} {_NN},"
    f"`PipelineId` {_V} {_NN},`PipelineVersionId` {_V} DEFAULT null,"
    f"`PipelineName` {_V} {_NN},`PipelineSpecManifest` longtext,"
    f"`WorkflowSpecManifest` longtext {_NN},`Parameters` longtext,"
    "`RuntimeParameters` longtext,`PipelineRoot` longtext,"
    f"`CreatedAtInSec` bigint {_NN},`ScheduledAtInSec` bigint DEFAULT 0,"
    f"`FinishedAtInSec` bigint DEFAULT 0,`Conditions` {_V} {_NN},"
    f"`State` {_V} DEFAULT null,`StateHistory` longtext DEFAULT null,"
    f"`PipelineRuntimeManifest` longtext {_NN},`WorkflowRuntimeManifest` longtext {_NN},"
    "`PipelineContextId` bigint DEFAULT 0,`PipelineRunContextId` bigint DEFAULT 0 , "
    "PRIMARY KEY (`UUID`));",
    f"CREATE TABLE `run_metrics` (`RunUUID` {_V} {_NN},`NodeID` {_V} {_NN},"
    f"`Name` {_V} {_NN},`NumberValue` double,`Format` {_V},`Payload` longtext {_NN} , "
    "PRIMARY KEY (`RunUUID`,`NodeID`,`Name`));",
    f"CREATE TABLE `tasks` (`UUID` {_V} {_NN},`Namespace` {_V} {_NN},"
    f"`PipelineName` {_V} {_NN},`RunUUID` {_V} {_NN},`PodName` {_V} {_NN},"
    f"`MLMDExecutionID` {_V} {_NN},`CreatedTimestamp` bigint {_NN},"
    "`StartedTimestamp` bigint DEFAULT 0,`FinishedTimestamp` bigint DEFAULT 0,"
    f"`Fingerprint` {_V} {_NN},`Name` {_V} DEFAULT null,`ParentTaskUUID` {_V} DEFAULT null,"
    f"`State` {_V} DEFAULT null,`StateHistory` longtext DEFAULT null,"
    "`MLMDInputs` longtext DEFAULT null,`MLMDOutputs` longtext DEFAULT null,"
    "`ChildrenPods` longtext DEFAULT null,`Payload` longtext DEFAULT null , "
    "PRIMARY KEY (`UUID`));",
    f"CREATE TABLE `resource_references` (`ResourceUUID` {_V} {_NN},"
    f"`ResourceType` {_V} {_NN},`ReferenceUUID` {_V} {_NN},`ReferenceName` {_V} {_NN},"
    f"`ReferenceType` {_V} {_NN},`Relationship` {_V} {_NN},`Payload` longtext {_NN} , "
    "PRIMARY KEY (`ResourceUUID`,`ResourceType`,`ReferenceType`));",
]

# gorm's own check before each index it adds, then the index (from the models' tags).
API_HAS_INDEX = (
    "SHOW INDEXES FROM `pipeline_versions` FROM `mlpipeline` "
    "WHERE Key_name = 'idx_pipelineid_name';"
)
API_MODEL_INDEXES = [
    "CREATE UNIQUE INDEX idx_name_namespace ON `experiments`(`Name`, `Namespace`);",
    "CREATE UNIQUE INDEX namespace_name ON `pipelines`(`Name`, `Namespace`);",
    "CREATE INDEX idx_pipeline_versions_CreatedAtInSec ON `pipeline_versions`(`CreatedAtInSec`);",
    "CREATE INDEX idx_pipeline_versions_PipelineId ON `pipeline_versions`(`PipelineId`);",
    "CREATE UNIQUE INDEX idx_pipelineid_name ON `pipeline_versions`(`Name`, `PipelineId`);",
    "CREATE INDEX referencefilter ON `resource_references`"
    "(`ResourceType`, `ReferenceUUID`, `ReferenceType`);",
]

# A database an older release made has unique indexes 2.4.1 drops: one per
# name (a gorm `unique` column, which MySQL names after the column) and one
# on pipeline versions. On a new database the drops of `Name` fail and gorm
# discards the error (RemoveIndex); here they are made first, so every drop runs.
API_OLD_INDEXES = [
    "CREATE UNIQUE INDEX `Name` ON `experiments`(`Name`);",
    "CREATE UNIQUE INDEX `Name` ON `pipelines`(`Name`);",
    "CREATE UNIQUE INDEX idx_pipeline_version_uuid_name ON `pipeline_versions`(`UUID`, `Name`);",
]

API_MIGRATION = [
    "DROP INDEX Name ON `experiments`;",
    "DROP INDEX Name ON `pipelines`;",
    "ALTER TABLE `resource_references` MODIFY COLUMN `Payload` longtext not null;",
    "CREATE INDEX experimentuuid_createatinsec ON `run_details`"
    "(`ExperimentUUID`, `CreatedAtInSec`);",
    "CREATE INDEX experimentuuid_conditions_finishedatinsec ON `run_details`"
    "(`ExperimentUUID`, `Conditions`, `FinishedAtInSec`);",
    "CREATE INDEX namespace_createatinsec ON `run_details`(`Namespace`, `CreatedAtInSec`);",
    "CREATE INDEX namespace_conditions_finishedatinsec ON `run_details`"
    "(`Namespace`, `Conditions`, `FinishedAtInSec`);",
    "CREATE UNIQUE INDEX name_namespace_index ON `pipelines`(`Name`, `Namespace`);",
    "SELECT count(*) FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA="
    "'mlpipeline' AND TABLE_NAME='run_metrics' AND CONSTRAINT_NAME="
    "'run_metrics_RunUUID_run_details_UUID__foreign' AND CONSTRAINT_TYPE='FOREIGN KEY';",
    "ALTER TABLE `run_metrics` ADD CONSTRAINT `run_metrics_RunUUID_run_details_UUID__foreign` "
    "FOREIGN KEY (`RunUUID`) REFERENCES run_details(UUID) ON DELETE CASCADE ON UPDATE CASCADE;",
    "ALTER TABLE `pipeline_versions` ADD CONSTRAINT "
    "`pipeline_versions_PipelineId_pipelines_UUID__foreign` FOREIGN KEY (`PipelineId`) "
    "REFERENCES pipelines(UUID) ON DELETE CASCADE ON UPDATE CASCADE;",
    "ALTER TABLE `tasks` ADD CONSTRAINT `tasks_RunUUID_run_details_UUID__foreign` "
    "FOREIGN KEY (`RunUUID`) REFERENCES run_details(UUID) ON DELETE CASCADE ON UPDATE CASCADE;",
]

# After the pipeline versions' backfill (below): backfillExperimentIDToRunTable,
# the description's type, the old index's check and drop.
API_MIGRATION_AFTER_BACKFILL = [
    'SELECT "ExperimentUUID" FROM run_details WHERE "ExperimentUUID" = \'\' LIMIT 1;',
    "UPDATE run_details, resource_references "
    "SET run_details.ExperimentUUID = resource_references.ReferenceUUID "
    "WHERE run_details.UUID = resource_references.ResourceUUID "
    "AND resource_references.ResourceType = 'Run' "
    "AND resource_references.ReferenceType = 'Experiment' "
    "AND run_details.ExperimentUUID = '';",
    "ALTER TABLE `pipelines` MODIFY COLUMN `Description` longtext not null;",
    "show index from pipeline_versions where Key_name='idx_pipeline_version_uuid_name';",
    "drop index idx_pipeline_version_uuid_name on pipeline_versions;",
]

# initPipelineVersionsFromPipelines, in one transaction, on a database where
# pipeline_versions was new. Its errors are discarded (tx.Exec): on an empty
# `pipelines` MariaDB refuses the INSERT ... SELECT for the columns it does
# not fill (PipelineSpec has no default), MySQL inserts nothing.
API_PIPELINE_VERSIONS_BACKFILL = (
    "START TRANSACTION; INSERT INTO pipeline_versions "
    "(UUID, Name, CreatedAtInSec, Parameters, Status, PipelineId) "
    "SELECT UUID, Name, CreatedAtInSec, Parameters, Status, UUID FROM pipelines; "
    "update pipelines set DefaultVersionId=UUID; COMMIT;"
)

# The rows the API server keeps: its status, the Default experiment.
API_ROWS = [
    "SELECT * FROM db_statuses;",
    "INSERT INTO db_statuses (HaveSamplesLoaded) VALUES (false);",
    "SELECT * FROM default_experiments;",
    "INSERT INTO default_experiments (DefaultExperimentId) VALUES ('');",
    "INSERT INTO experiments (UUID, Name, Description, CreatedAtInSec, LastRunCreatedAtInSec, "
    "Namespace, StorageState) VALUES ('e-1', 'Default', 'All runs created without "
    "specifying an experiment will be grouped here.', 1, 0, '', 'AVAILABLE');",
    "UPDATE default_experiments SET DefaultExperimentId = 'e-1';",
    "UPDATE db_statuses SET HaveSamplesLoaded = true;",
]

# A run, its metric and task: the foreign keys hold and cascade.
API_RUN = [
    "INSERT INTO run_details (UUID, DisplayName, Name, Description, Namespace, ExperimentUUID, "
    "StorageState, ServiceAccount, PipelineId, PipelineName, WorkflowSpecManifest, "
    "CreatedAtInSec, Conditions, PipelineRuntimeManifest, WorkflowRuntimeManifest) VALUES "
    "('r-1', 'run', 'run-abc', '', 'alice', 'e-1', 'AVAILABLE', 'default-editor', '', 'p', "
    "'{}', 2, 'Running', '', '');",
    "INSERT INTO run_metrics (RunUUID, NodeID, Name, NumberValue, Format, Payload) "
    "VALUES ('r-1', 'n-1', 'accuracy', 0.9, 'RAW', '{}');",
    "INSERT INTO tasks (UUID, Namespace, PipelineName, RunUUID, PodName, MLMDExecutionID, "
    "CreatedTimestamp, Fingerprint) VALUES ('t-1', 'alice', 'p', 'r-1', 'pod', '7', 3, 'f');",
]

# --- MLMD ------------------------------------------------------------------------------

MLMD_TRANSACTIONAL = (
    "SELECT ENGINE, TRANSACTIONS FROM INFORMATION_SCHEMA.ENGINES WHERE "
    "ENGINE=(SELECT @@default_storage_engine);"
)
MLMD_CONNECT = f"CREATE DATABASE IF NOT EXISTS {METADB}; USE {METADB};"
# How MLMD tells an empty database on MySQL (metadata_store/query_config_executor.cc
# GetSchemaVersion): both fail there, as missing tables, and it creates the schema.
MLMD_SCHEMA_PROBES = [
    "SELECT `schema_version` FROM `MLMDEnv`;",
    "SELECT `Type`.`is_artifact_type` from `Artifact`, `Event`, `Execution`, `Type`, "
    "`ArtifactProperty`, `EventPath`, `ExecutionProperty`, `TypeProperty` LIMIT 1;",
]
MLMD_SCHEMA_VERSION = 10

_PROPERTY_COLUMNS = (
    "`name` VARCHAR(255) NOT NULL, `is_custom_property` TINYINT(1) NOT NULL, "
    "`int_value` INT, `double_value` DOUBLE, `string_value` MEDIUMTEXT, "
    "`byte_value` MEDIUMBLOB, `proto_value` MEDIUMBLOB, `bool_value` BOOLEAN, "
)
MLMD_CREATE_TABLES = [
    "CREATE TABLE IF NOT EXISTS `Type` (`id` INT PRIMARY KEY AUTO_INCREMENT, "
    "`name` VARCHAR(255) NOT NULL, `version` VARCHAR(255), `type_kind` TINYINT(1) NOT NULL, "
    "`description` TEXT, `input_type` TEXT, `output_type` TEXT, "
    "`external_id` VARCHAR(255) UNIQUE);",
    "CREATE TABLE IF NOT EXISTS `ParentType` (`type_id` INT NOT NULL, "
    "`parent_type_id` INT NOT NULL, PRIMARY KEY (`type_id`, `parent_type_id`));",
    "CREATE TABLE IF NOT EXISTS `Artifact` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`type_id` INT NOT NULL, `uri` TEXT, `state` INT, `name` VARCHAR(255), "
    "`external_id` VARCHAR(255) UNIQUE, `create_time_since_epoch` BIGINT NOT NULL DEFAULT 0, "
    "`last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0, "
    "CONSTRAINT UniqueArtifactTypeName UNIQUE(`type_id`, `name`));",
    "CREATE TABLE IF NOT EXISTS `ArtifactProperty` (`artifact_id` INT NOT NULL, "
    f"{_PROPERTY_COLUMNS}PRIMARY KEY (`artifact_id`, `name`, `is_custom_property`));",
    "CREATE TABLE IF NOT EXISTS `Execution` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`type_id` INT NOT NULL, `last_known_state` INT, `name` VARCHAR(255), "
    "`external_id` VARCHAR(255) UNIQUE, `create_time_since_epoch` BIGINT NOT NULL DEFAULT 0, "
    "`last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0, "
    "CONSTRAINT UniqueExecutionTypeName UNIQUE(`type_id`, `name`));",
    "CREATE TABLE IF NOT EXISTS `Context` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`type_id` INT NOT NULL, `name` VARCHAR(255) NOT NULL, "
    "`external_id` VARCHAR(255) UNIQUE, `create_time_since_epoch` BIGINT NOT NULL DEFAULT 0, "
    "`last_update_time_since_epoch` BIGINT NOT NULL DEFAULT 0, UNIQUE(`type_id`, `name`));",
    "CREATE TABLE IF NOT EXISTS `ParentContext` (`context_id` INT NOT NULL, "
    "`parent_context_id` INT NOT NULL, PRIMARY KEY (`context_id`, `parent_context_id`));",
    "CREATE TABLE IF NOT EXISTS `Event` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`artifact_id` INT NOT NULL, `execution_id` INT NOT NULL, `type` INT NOT NULL, "
    "`milliseconds_since_epoch` BIGINT, "
    "CONSTRAINT UniqueEvent UNIQUE(`artifact_id`, `execution_id`, `type`));",
    "CREATE TABLE IF NOT EXISTS `EventPath` (`event_id` INT NOT NULL, "
    "`is_index_step` TINYINT(1) NOT NULL, `step_index` INT, `step_key` TEXT);",
    "CREATE TABLE IF NOT EXISTS `Attribution` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`context_id` INT NOT NULL, `artifact_id` INT NOT NULL, "
    "UNIQUE(`context_id`, `artifact_id`));",
    "CREATE TABLE IF NOT EXISTS `MLMDEnv` (`schema_version` INTEGER PRIMARY KEY);",
]
MLMD_SECONDARY_INDEXES = [
    "ALTER TABLE `Artifact` ADD INDEX `idx_artifact_uri`(`uri`(255)), "
    "ADD INDEX `idx_artifact_create_time_since_epoch` (`create_time_since_epoch`), "
    "ADD INDEX `idx_artifact_last_update_time_since_epoch` (`last_update_time_since_epoch`);",
    "ALTER TABLE `ParentContext` ADD INDEX "
    "`idx_parentcontext_parent_context_id` (`parent_context_id`);",
    "ALTER TABLE `Type` ADD INDEX `idx_type_name` (`name`);",
    "ALTER TABLE `EventPath` ADD INDEX `idx_eventpath_event_id`(`event_id`);",
    "ALTER TABLE `ArtifactProperty` ADD INDEX `idx_artifact_property_string`("
    "`name`, `is_custom_property`, `string_value`(255));",
    "ALTER TABLE `Type` ADD INDEX `idx_type_external_id` (`external_id`);",
]
MLMD_VERSION = [
    "SELECT `schema_version` FROM `MLMDEnv`;",
    f"INSERT INTO `MLMDEnv`(`schema_version`) VALUES({MLMD_SCHEMA_VERSION});",
    f"UPDATE `MLMDEnv` SET `schema_version` = {MLMD_SCHEMA_VERSION};",
]
MLMD_WRITES = [
    "INSERT INTO `Type`(`name`, `type_kind`, `version`, `description`, `external_id`) "
    "VALUES('system.Dataset', 1, NULL, NULL, NULL);",
    "SELECT last_insert_id();",
    "SELECT `id`, `name`, `version`, `description`, `input_type`, `output_type` FROM `Type` "
    "WHERE name = 'system.Dataset' AND version IS NULL AND type_kind = 1 LOCK IN SHARE MODE;",
    "INSERT INTO `Artifact`(`type_id`, `uri`, `state`, `name`, `external_id`, "
    "`create_time_since_epoch`, `last_update_time_since_epoch`) "
    "VALUES(1, 'minio://mlpipeline/private-artifacts/alice/v2/artifacts/p/r/t/u/dataset', "
    "2, NULL, NULL, 1, 1);",
    "INSERT INTO `Event`(`artifact_id`, `execution_id`, `type`, `milliseconds_since_epoch`) "
    "VALUES(1, 1, 4, 1);",
    "INSERT INTO `EventPath`(`event_id`, `is_index_step`, `step_key`) VALUES(1, 0, 'dataset');",
]
# The migration that rebuilds Event: MLMD drops and renames its own tables.
MLMD_REBUILD_EVENT = [
    "CREATE TABLE `EventTemp` (`id` INTEGER PRIMARY KEY AUTO_INCREMENT, "
    "`artifact_id` INT NOT NULL, `execution_id` INT NOT NULL, `type` INT NOT NULL, "
    "`milliseconds_since_epoch` BIGINT, "
    "CONSTRAINT UniqueEvent UNIQUE(`artifact_id`, `execution_id`, `type`));",
    "INSERT IGNORE INTO `EventTemp` (`id`, `artifact_id`, `execution_id`, `type`, "
    "`milliseconds_since_epoch`) SELECT * FROM `Event` ORDER BY `id` desc;",
    "DROP TABLE `Event`;",
    "ALTER TABLE `EventTemp` RENAME TO `Event`, "
    "ADD INDEX `idx_event_execution_id` (`execution_id`);",
    "DELETE FROM `EventPath` WHERE event_id not in (SELECT `id` from Event);",
]
