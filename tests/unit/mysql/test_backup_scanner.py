"""The SQL check a restore makes before the server sees a dump (`dump_scanner`)."""

from __future__ import annotations

import dump_scanner
import pytest
from dump_scanner import DumpRefusedError, scan_dump
from unit.mysql.helpers import CHARM  # noqa: F401 - puts the charm's modules on sys.path

# The shape of a dump by MariaDB 10.11's dump tool with the charm's options
# (taken from a run in the workload tests), objects owned by a relation user.
MARIADB_DUMP = r"""/*M!999999\- enable the sandbox mode */
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40000 DROP DATABASE IF EXISTS `shop`*/;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET latin1 */;
USE `shop`;
DROP TABLE IF EXISTS `big_spenders`;
/*!50001 DROP VIEW IF EXISTS `big_spenders`*/;
SET @saved_cs_client     = @@character_set_client;
SET character_set_client = utf8mb4;
/*!50001 CREATE VIEW `big_spenders` AS SELECT
 NULL AS `customer_id`,
 NULL AS `total` */;
DROP TABLE IF EXISTS `customers`;
CREATE TABLE `customers` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `user` varchar(64) NOT NULL,
  `note` text DEFAULT NULL,
  PRIMARY KEY (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
LOCK TABLES `customers` WRITE;
/*!40000 ALTER TABLE `customers` DISABLE KEYS */;
INSERT INTO `customers` VALUES (1,'GRANT ALL ON *.* TO x; -- \' USE mysql',
'it\'s "q" \\ /* no */'),
(2,'line\nbreak;','DEFINER=`root`@`localhost`'),(3,'a'';b',0x5A52);
/*!40000 ALTER TABLE `customers` ENABLE KEYS */;
UNLOCK TABLES;
/*!50003 SET sql_mode = 'STRICT_TRANS_TABLES,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION' */ ;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`relation-7`@`%`*/ /*!50003 TRIGGER shop.orders_default
  BEFORE INSERT ON shop.orders FOR EACH ROW SET NEW.status = COALESCE(NEW.status, 'new') */;;
DELIMITER ;
DELIMITER ;;
CREATE DEFINER=`relation-7`@`%` FUNCTION `with_vat`(amount DECIMAL(12, 2))
    RETURNS decimal(12,2)
    DETERMINISTIC
BEGIN
  DECLARE x INT; SET x = 1; RETURN amount * 1.2;
END ;;
/*!50106 CREATE*/ /*!50117 DEFINER=`relation-7`@`%`*/ /*!50106 EVENT `purge_old` ON SCHEDULE
 EVERY 1 DAY DISABLE DO DELETE FROM `shop`.customers WHERE id < 0 */ ;;
DELIMITER ;
/*!50001 DROP VIEW IF EXISTS `big_spenders`*/;
/*!50001 CREATE ALGORITHM=UNDEFINED */
/*!50013 DEFINER=`relation-7`@`%` SQL SECURITY DEFINER */
/*!50001 VIEW `big_spenders` AS select `orders`.`customer_id` AS `customer_id` from `orders` */;
/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
-- Dump completed on 2026-11-30 10:59:33
"""

# MySQL 8.4's mysqldump writes `/*!50503 SET NAMES` and a view placeholder of
# `1 AS` columns (mysql/mysql-server, client/mysqldump.cc, write_header and
# the view stand-in; read at commit 1e5b97946393ae2ce4ce0cd0b35196da8f3e6ae2).
MYSQL_DUMP = """-- MySQL dump 10.13  Distrib 8.4.3
/*!50503 SET NAMES utf8mb4 */;
/*!40103 SET TIME_ZONE='+00:00' */;
CREATE DATABASE /*!32312 IF NOT EXISTS*/ `kfp` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;
USE `kfp`;
/*!50001 CREATE VIEW `v` AS SELECT 1 AS `a`,1 AS `b`*/;
CREATE TABLE `runs` (`id` int NOT NULL, PRIMARY KEY (`id`));
INSERT INTO `runs` VALUES (1),(2);
-- Dump completed on 2026-11-28  1:02:03
"""


def _scan(tmp_path, sql: str | bytes, databases=("shop",)) -> int:
    path = tmp_path / "dump.sql"
    path.write_bytes(sql.encode() if isinstance(sql, str) else sql)
    return scan_dump(str(path), databases)


def test_our_own_dumps_pass(tmp_path):
    assert _scan(tmp_path, MARIADB_DUMP) > 20
    assert _scan(tmp_path, MYSQL_DUMP, databases=("kfp",)) == 7


@pytest.mark.parametrize("block", [1, 2, 7, 64])
def test_statements_across_block_boundaries(tmp_path, monkeypatch, block):
    # Tokens, strings, comments and `;;` split between reads read the same.
    whole = _scan(tmp_path, MARIADB_DUMP)
    monkeypatch.setattr(dump_scanner, "_BLOCK", block)
    assert _scan(tmp_path, MARIADB_DUMP) == whole
    with pytest.raises(DumpRefusedError, match="GRANT"):
        _scan(tmp_path, _with("INSERT INTO t VALUES ('x''y');GRANT SELECT ON shop.* TO x;"))


def _with(statement: str) -> str:
    return MARIADB_DUMP.replace("UNLOCK TABLES;\n", f"UNLOCK TABLES;\n{statement}\n", 1)


REFUSED = {
    "GRANT ALL PRIVILEGES ON *.* TO 'relation-1'@'%' WITH GRANT OPTION;": "GRANT",
    "/*!50000 GRANT SELECT ON shop.* TO x*/;": "GRANT",
    "REVOKE SELECT ON shop.* FROM x;": "REVOKE",
    "CREATE USER 'evil'@'%' IDENTIFIED BY 'x';": "CREATE USER",
    "ALTER USER 'charm-admin'@'localhost' IDENTIFIED BY 'x';": "ALTER USER",
    "DROP USER 'charm-admin'@'localhost';": "DROP USER",
    "RENAME USER a TO b;": "RENAME USER",
    "CREATE ROLE r;": "CREATE ROLE",
    "SET ROLE ALL;": "SET ROLE",
    "SET DEFAULT ROLE ALL TO x;": "SET DEFAULT ROLE",
    "SET PASSWORD FOR root@localhost = 'x';": "SET PASSWORD",
    "USE mysql;": "database 'mysql'",
    "USE `other`;": "database 'other'",
    "INSERT INTO `mysql`.`user` VALUES (1);": "system schema `mysql`",
    "INSERT INTO mysql.db VALUES (1);": "system schema `mysql`",
    'INSERT INTO "mysql"."user" VALUES (1);': "system schema `mysql`",
    "UPDATE mysql.global_priv SET x = 1;": "system schema `mysql`",
    "UPDATE t SET x = 1;": "a statement a dump does not hold",
    "DROP DATABASE `sys`;": "database 'sys'",
    "CREATE TABLE performance_schema.t (a int);": "system schema `performance_schema`",
    "INSTALL PLUGIN x SONAME 'x.so';": "INSTALL PLUGIN",
    "CREATE FUNCTION f RETURNS STRING SONAME 'x.so';": "SONAME",
    "INSTALL COMPONENT 'file://x';": "INSTALL COMPONENT",
    "SET GLOBAL local_infile = 1;": "a global setting",
    "SET PERSIST max_connections = 1;": "a persisted setting",
    "SET @@global.read_only = 1;": "a global setting",
    "SET SESSION sql_mode = 'ANSI_QUOTES';": "SQL mode that changes quoting",
    "SET sql_mode = 'STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES';": "SQL mode",
    "SET @m = 'ORACLE';": "SQL mode",
    "SET NAMES gbk;": "client character set",
    "SET character_set_client = 'sjis';": "client character set",
    "SET @x = CONCAT('GR', 'ANT');": "function call in a SET",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE t;": "LOAD DATA",
    "INSERT INTO t SELECT LOAD_FILE('/etc/passwd') FROM DUAL INTO DUMPFILE '/x';": "DUMPFILE",
    "SELECT * FROM t INTO OUTFILE '/tmp/x';": "OUTFILE",
    "SHUTDOWN;": "SHUTDOWN",
    "PREPARE s FROM @q;": "dynamic SQL",
    "CALL shop.p();": "a statement a dump does not hold",
    "\\! sh -c id": "backslash outside a string",
    "system id;": "a statement a dump does not hold",
    "SELECT 1 \\G": "backslash",
    "CREATE TABLE `a\\` (x int);": "backslash in a quoted name",
    "DELIMITER //": "unexpected delimiter",
    "CREATE DEFINER=`root`@`localhost` PROCEDURE p() SELECT 1;": "DEFINER root@localhost",
    "CREATE DEFINER=`charm-admin`@`localhost` VIEW v AS SELECT 1;": "DEFINER charm-admin",
    "CREATE DEFINER=`relation-1`@`localhost` VIEW v AS SELECT 1;": "DEFINER relation-1@localhost",
    "CREATE DEFINER=CURRENT_USER TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a=1;": "DEFINER",
    "CREATE PROCEDURE p() SELECT 1;": "procedure without a DEFINER",
    "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET @a = 1;": "trigger without a DEFINER",
    "CREATE VIEW v AS SELECT id FROM customers;": "view without a DEFINER",
    "CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (HOST 'x');": "CREATE SERVER",
    "CREATE TABLE t (a int) DATA DIRECTORY = '/etc';": "DATA or INDEX DIRECTORY",
    "CREATE DEFINER=`relation-1`@`%` PROCEDURE p() BEGIN GRANT ALL ON *.* TO x; END;": "GRANT",
    "CREATE DEFINER=`relation-1`@`%` PROCEDURE p() BEGIN "
    "CREATE DEFINER=`root`@`localhost` VIEW v AS SELECT 1; END;": "DEFINER root@localhost",
    "CREATE DEFINER=`relation-1`@`%` EVENT e ON SCHEDULE EVERY 1 DAY "
    "DO DELETE FROM mysql.user;": "system schema `mysql`",
}

UNFINISHED = {
    "INSERT INTO t VALUES ('unterminated);\n": "unterminated string",
    "INSERT INTO t VALUES (`unterminated);\n": "unterminated name",
    "/* never closed\n": "unterminated comment",
    "/*!50000 SET @a = 1;\n": "ends inside a versioned comment",
    "SET @a = 1 */;\n": "stray",
}


@pytest.mark.parametrize("statement", list(REFUSED))
def test_refused_statements(tmp_path, statement):
    with pytest.raises(DumpRefusedError, match=f"(?i){REFUSED[statement]}") as error:
        _scan(tmp_path, _with(statement))
    assert "the dump" in str(error.value)


@pytest.mark.parametrize("tail", list(UNFINISHED))
def test_unfinished_tokens_are_refused(tmp_path, tail):
    with pytest.raises(DumpRefusedError, match=UNFINISHED[tail]):
        _scan(tmp_path, "USE `shop`;\n" + tail)


def test_refusal_names_the_line(tmp_path):
    with pytest.raises(DumpRefusedError, match=r"GRANT \(statement at line 3\)"):
        _scan(tmp_path, "USE `shop`;\nSET @a = 1;\nGRANT SELECT ON shop.* TO x;\n")


def test_words_in_strings_and_comments_are_data(tmp_path):
    sql = (
        "USE `shop`;\n"
        "-- GRANT ALL ON *.* TO x\n"
        "# DROP USER root\n"
        "/* SET GLOBAL x = 1 */\n"
        "INSERT INTO `t` VALUES ('GRANT', \"mysql.user\", 'a\\'; GRANT x; \\'', 'USE mysql');\n"
    )
    assert _scan(tmp_path, sql) == 2


def test_large_insert_keeps_memory_flat(tmp_path):
    rows = ",".join(f"({n},'{'x' * 100}')" for n in range(50_000))
    assert _scan(tmp_path, f"USE `shop`;\nINSERT INTO `t` VALUES {rows};\n") == 2
